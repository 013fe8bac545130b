"""Properties that must hold on trained model organisms: planted evidence found, IG complete, pruning exact and undoable."""
import numpy as np
import pytest
import torch
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.organisms import train_organism
from attnprune_nb.prompts import pad_batch, encode_prompts
from attnprune_nb.classify import classify
from attnprune_nb.attribution import attribute
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
