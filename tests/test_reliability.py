"""Properties that must hold on trained model organisms: planted evidence found, IG complete, pruning exact and undoable."""
import numpy as np
import pytest
import torch
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.organisms import train_organism
from attnprune_nb.prompts import pad_batch, encode_prompts
from attnprune_nb.classify import classify
from dataclasses import replace
from attnprune_nb.attribution import attribute, METHODS
from attnprune_nb.organisms import random_model
from attnprune_nb.faithfulness import faithfulness, relative_to_random
from attnprune_nb.prune import attention_dropped, layers_to_drop


@pytest.fixture(scope="module")
def sentiment():
    task = load_task("synthetic-sentiment")
    model, tok = train_organism("llama", task, progress=False)
    ex = sample_split(task.split("test"), 200, 0)
    return task, model, tok, ex


def top1_in_rationale(attr, ex):
    correct = attr.targets == ex.label.to_numpy()
    hits = [attr.enc.word_ids[i][int(np.argmax(attr.scores[i]))] in ex.rationale[i] for i in np.flatnonzero(correct)]
    return float(np.mean(hits)), int(correct.sum())


def test_organism_is_accurate(sentiment):
    task, model, tok, ex = sentiment
    preds, _ = classify(model, tok, task, n=500)
    assert preds.accuracy >= 0.95


@pytest.mark.parametrize("method,low,high", [("integrated_gradients", 0.80, 1.0), ("occlusion", 0.80, 1.0), ("random", 0.0, 0.35)])
def test_planted_evidence_ranked_first(sentiment, method, low, high):
    task, model, tok, ex = sentiment
    rate, n = top1_in_rationale(attribute(model, tok, task, ex.text.tolist(), method), ex)
    print(f"{method}: planted evidence ranked first for {rate:.3f} of {n} correctly classified examples")
    assert n >= 150 and low <= rate <= high


def test_ig_completeness_on_organism(sentiment):
    task, model, tok, ex = sentiment
    ig = attribute(model, tok, task, ex.text[:32].tolist(), "integrated_gradients", n_steps=100)
    assert np.abs(ig.info["delta"]).max() < 0.05


def test_pruned_forward_restores_and_ig_beats_random(sentiment):
    task, model, tok, ex = sentiment
    b = pad_batch(encode_prompts(tok, task, ex.text[:16].tolist()).input_ids, tok.pad_token_id)
    with torch.no_grad(): ref = model(**b).logits
    layers = layers_to_drop(model, 3, "similarity", tok, task, n=32)
    with attention_dropped(model, layers):
        frames = [faithfulness(model, tok, task, attribute(model, tok, task, ex.text[:64].tolist(), m)) for m in ("integrated_gradients", "random")]
    with torch.no_grad(): assert torch.equal(model(**b).logits, ref)
    import pandas as pd
    rel = relative_to_random(pd.concat(frames))
    assert rel[rel.metric == "comprehensiveness_aopc"].minus_random.item() > 0


def test_random_control_is_seeded_per_example(sentiment):
    task, model, tok, ex = sentiment
    texts = ex.text[:12].tolist()
    a = attribute(model, tok, task, texts, "random")
    other = texts[6:][::-1] + texts[:3]  # another order, another set of companions
    b = attribute(model, tok, task, other, "random")
    for j, t in enumerate(other):
        np.testing.assert_array_equal(b.scores[j], a.scores[texts.index(t)])
    c = attribute(model, tok, task, texts, "random", seed=1)
    assert not np.allclose(np.concatenate(a.scores), np.concatenate(c.scores))


def test_attention_rule_moves_only_by_dropped_layers(sentiment):
    task, model, tok, ex = sentiment
    n = model.config.num_hidden_layers
    for k in range(0, n):
        layers = layers_to_drop(model, k, "last")
        with attention_dropped(model, layers):
            a = attribute(model, tok, task, ex.text[:4].tolist(), "attention")
        assert a.info["layers"] == [l for l in range(n) if l not in layers], (k, layers, a.info["layers"])


def test_decision_flip_rate_and_fraction_differ(sentiment):
    task, model, tok, ex = sentiment
    df = faithfulness(model, tok, task, attribute(model, tok, task, ex.text[:48].tolist(), "random"), soft=False, loo=False)
    rate = df[df.metric == "decision_flip_rate"].set_index("example").value
    frac = df[df.metric == "decision_flip_fraction"].set_index("example").value
    assert set(rate.unique()) <= {0.0, 1.0}
    assert (frac.isna() == (rate == 0)).all()  # NaN exactly for the examples that never flip
    assert ((frac.dropna() > 0) & (frac.dropna() <= 1)).all()
    assert 0 < rate.mean() <= 1


@pytest.mark.parametrize("method", METHODS)
def test_every_method_with_multi_token_label_words(method):
    model, tok = random_model("llama")
    task = replace(load_task("synthetic-sentiment"), label_words=["bad movie", "good film"])
    texts = task.split("test").text[:3].tolist()
    a = attribute(model, tok, task, texts, method, n_steps=8, n_samples=16)
    assert [len(s) for s in a.scores] == [b - s0 for s0, b in a.enc.spans]
    assert all(np.isfinite(s).all() for s in a.scores)


# --- issue 20: a damaged organism cache is rebuilt, not a raw SafetensorError or NaN probabilities forever ---
import os, subprocess, sys
from fastcore.xtras import modified_env
from attnprune_nb.core import check_manifest
from attnprune_nb.organisms import organism_path

QUICK = dict(steps=5, n_layers=4, hidden=32)
PROMPTS = ["Review: the movie was great", "Review: a dull , boring plot"]
FRESH_LOAD = r"""
import sys, torch
from attnprune_nb.organisms import train_organism
model, tok = train_organism("llama", "synthetic-sentiment", progress=False, steps=5, n_layers=4, hidden=32)
with torch.no_grad(): torch.save(model(**tok(sys.argv[2:], return_tensors="pt", padding=True)).logits, sys.argv[1])
"""


def fresh_load(cache, out):
    "Load (or rebuild) the quick organism in a fresh process; returns (its logits, its attnprune stderr lines)."
    env = {**os.environ, "ATTNPRUNE_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", FRESH_LOAD, str(out), *PROMPTS], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(out), [l for l in r.stderr.splitlines() if l.startswith("attnprune")]


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "truncated_without_manifest"])
def test_damaged_organism_cache_is_rebuilt_in_fresh_process(tmp_path, damage):
    cache = tmp_path/"cache"
    with modified_env(ATTNPRUNE_CACHE=str(cache)):
        model, tok = train_organism("llama", "synthetic-sentiment", progress=False, **QUICK)
        folder = organism_path("llama", "synthetic-sentiment", **QUICK)
    with torch.no_grad(): want = model(**tok(PROMPTS, return_tensors="pt", padding=True)).logits
    weights = folder/"model.safetensors"
    assert check_manifest(folder) == []
    if damage.endswith("without_manifest"): (folder/"manifest.json").unlink()  # cached before manifests
    with open(weights, "r+b") as f:
        if damage == "overwritten": f.seek(weights.stat().st_size - 40); f.write(b"\xff" * 8)
        else: f.truncate(weights.stat().st_size // 2)
    got, lines = fresh_load(cache, tmp_path/"a.pt")
    why = ("model.safetensors does not load (SafetensorError" if damage.endswith("without_manifest")
           else "model.safetensors does not match the sha256 it was cached with")
    assert len(lines) == 1 and lines[0].startswith(f"attnprune: warning: {folder}/{why}"), lines
    assert lines[0].endswith("the cached organism is rebuilt (retrained)."), lines
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)  # retrained to the same predictions
    assert check_manifest(folder) == []
    if damage == "truncated":
        again, lines = fresh_load(cache, tmp_path/"b.pt")  # the rebuilt cache loads silently
        assert lines == [] and torch.equal(again, got)
