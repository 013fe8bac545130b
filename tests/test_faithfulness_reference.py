"""Independent cross-check of comprehensiveness, sufficiency and decision flips on a trained organism.

The reference below is written from the definitions (DESIGN.md, 06_faithfulness) with a plain loop: one forward pass
of the full prompt per perturbed prompt, no package helper beyond loading the organism and encoding the prompts.
"""
from dataclasses import replace
import numpy as np
import pytest
import torch
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.organisms import train_organism
from attnprune_nb.prompts import encode_prompts, label_token_ids
from attnprune_nb.attribution import attribute
from attnprune_nb.faithfulness import faithfulness

KS = (1, 5, 10, 20, 50)


@pytest.fixture(scope="module")
def organism():
    task = load_task("synthetic-sentiment")
    model, tok = train_organism("llama", task, progress=False)
    return task, model, tok


def two_shot(task):
    "The task with two demonstrations (one per class) written into the template's prefix."
    tr = task.split("train")
    demos = [tr[tr.label == c].text.iloc[0] for c in (0, 1)]
    prefix = "".join(task.prompt(t) + " " + task.label_words[c] + "\n" for c, t in enumerate(demos))
    return replace(task, template=prefix + task.template)


@torch.no_grad()
def class_probs(model, seq, label_ids):
    "p(class | prompt) for one prompt: each label word's log-prob by one full forward, renormalised over classes."
    lps, seen = [], {}
    for lw in label_ids:
        full = tuple(seq + lw[:-1])
        if full not in seen: seen[full] = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), -1)
        lps.append(sum(seen[full][len(seq) - 1 + t, w].item() for t, w in enumerate(lw)))
    lps = np.array(lps)
    return np.exp(lps - np.log(np.exp(lps).sum()))


def reference(model, ids, span, scores, label_ids):
    "Comprehensiveness and sufficiency per k, and the decision-flip point, for one example."
    a, b = span
    text, L = ids[a:b], b - a
    p_full = class_probs(model, ids, label_ids)
    y = int(p_full.argmax())
    order = sorted(range(L), key=lambda j: (-scores[j], j))
    comp, suff = {}, {}
    for k in KS:
        n = min(L, max(1, int(np.floor(k * L / 100 + 0.5))))
        top = set(order[:n])
        without = ids[:a] + [t for j, t in enumerate(text) if j not in top] + ids[b:]
        only = ids[:a] + [t for j, t in enumerate(text) if j in top] + ids[b:]
        comp[k] = p_full[y] - class_probs(model, without, label_ids)[y]
        suff[k] = p_full[y] - class_probs(model, only, label_ids)[y]
    flip = np.nan
    for j in range(1, L + 1):
        gone = set(order[:j])
        seq = ids[:a] + [t for m, t in enumerate(text) if m not in gone] + ids[b:]
        if class_probs(model, seq, label_ids).argmax() != y:
            flip = j / L
            break
    return y, comp, suff, flip


@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize("method", ["integrated_gradients", "random"])
def test_faithfulness_matches_plain_loop(organism, method, shots):
    task, model, tok = organism
    task = two_shot(task) if shots else task
    texts = sample_split(task.split("test"), 8, 0).text.tolist()
    enc = encode_prompts(tok, task, texts)
    label_ids = label_token_ids(tok, task)
    attr = attribute(model, tok, task, enc, method, n_steps=16)
    df = faithfulness(model, tok, task, attr, soft=False, loo=False).set_index(["example", "metric", "k"]).value
    for i in range(len(texts)):
        y, comp, suff, flip = reference(model, enc.input_ids[i], enc.spans[i], attr.scores[i], label_ids)
        assert y == attr.targets[i]
        for k in KS:
            assert abs(df[i, "comprehensiveness", k] - comp[k]) < 1e-5, (i, k)
            assert abs(df[i, "sufficiency", k] - suff[k]) < 1e-5, (i, k)
        assert abs(df[i, "comprehensiveness_aopc", np.nan] - np.mean(list(comp.values()))) < 1e-5
        assert abs(df[i, "sufficiency_aopc", np.nan] - np.mean(list(suff.values()))) < 1e-5
        got = df[i, "decision_flip_fraction", np.nan]
        assert (np.isnan(got) and np.isnan(flip)) or abs(got - flip) < 1e-12, (i, got, flip)
        assert df[i, "decision_flip_rate", np.nan] == float(not np.isnan(flip))
