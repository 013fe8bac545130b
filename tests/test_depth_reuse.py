"""Depth reuse (issue 21): scoring a pruned model from its first dropped layer, on the full model's stored states.

Class log-probabilities with and without `prune.DepthReuse` agree within 1e-4 (fp32) on every supported
architecture (tiny random models), on a trained organism and on SmolLM2-135M when it is installed, in padded
batches, with and without the shared prefix, with one- and two-token label words; for sets of dropped layers whose
first layer is stored, whose first layer lies above a stored one, and where no layer from the start up computes
attention (`last`). The token budgets put several prompts of different lengths in a batch (checked): with one
prompt per batch, a mistake in where the stored states go in a padded row would go unseen."""
from dataclasses import replace
import numpy as np
import pytest, torch
from attnprune_nb.core import AttnPruneError
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.models import BUILTIN_MODELS, builtin_models, load_model
from attnprune_nb.organisms import random_model, train_organism
from attnprune_nb.prompts import encode_prompts, label_token_ids, model_max_length
from attnprune_nb.classify import class_log_probs, token_batches, _batch_cost
from attnprune_nb.prune import ARCH_SPECS, DepthReuse, attention_dropped, decoder_layers

torch.set_num_threads(1)
ATOL = 1e-4
ARCHS = {  # case: (organism architecture, config overrides)
    "llama": ("llama", {}), "mistral": ("mistral", {}), "qwen2": ("qwen2", {}), "phi3": ("phi3", {}),
    "gemma": ("gemma", {}), "gemma2": ("gemma2", {"sliding_window": 8}),
    "gemma3_text": ("gemma3", {"sliding_window": 8}), "gpt2": ("gpt2", {}), "gpt_neox": ("gpt_neox", {}),
    "gpt_neox sequential": ("gpt_neox", {"use_parallel_residual": False}), "opt": ("opt", {}),
    "opt post-LN": ("opt", {"do_layer_norm_before": False}),
}
# sets of dropped layers of a 6-layer model: (first layer stored, a kept layer above it), (stored below the first
# dropped one), (`last`: no attention from the start up), (layer 0: nothing to reuse)
DROPS = ([2, 4], [3, 5], [4, 5], [0, 3])
STORED = [2, 4]


def _max_diff(a, b): return max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max())


def _prompts(tok, task, n=8, shots=2):
    "Encoded prompts of `task` with `shots` demonstrations, one with an empty text (a row of prefix + suffix)."
    t = task.with_shots(shots)
    split = "validation" if "validation" in task.splits else task.default_split()
    enc = encode_prompts(tok, t, sample_split(task.split(split), n, 0).text.tolist(), max_length=512)
    seqs = enc.input_ids[:-1] + [enc.input_ids[-1][:enc.prefix_len] + enc.input_ids[-1][enc.spans[-1][1]:]]
    return t, seqs, enc.prefix_len


def check_exact(model, tok, task, drops, stored, token_budget=160, n=8, prefixes=(True, False)):
    "Score the full model with a store, then each pruned model with and without it; returns the largest diff."
    worst, reused = 0.0, 0
    t, seqs, prefix_len = _prompts(tok, task, n)
    batches = token_batches([len(s) for s in seqs], token_budget, _batch_cost(model))
    assert any(len({len(seqs[i]) for i in b}) > 1 for b in batches), "no padded batch: raise the token budget"
    for tk in (t, replace(t, label_words=[w + " " + w for w in t.label_words])):  # one and several tokens
        lids = label_token_ids(tok, tk)
        for plen in [prefix_len if p else 0 for p in prefixes]:
            depth = DepthReuse(stored)
            def run(**kw): return class_log_probs(model, tok, seqs, lids, plen, token_budget=token_budget, **kw)
            full = run(depth=depth)
            assert np.allclose(full[0], run()[0], atol=1e-6)
            for d in drops:
                before = depth.counts["reused"]
                with attention_dropped(model, d): ref, got = run(), run(depth=depth)
                worst = max(worst, _max_diff(ref, got))
                can = any(0 < s <= min(d) for s in stored)
                assert (depth.counts["reused"] > before) == can, (d, depth)
                reused += depth.counts["reused"] - before
    return worst, reused


def test_every_architecture_is_covered():
    assert {random_model(a, **o)[0].config.model_type for a, o in ARCHS.values()} == set(ARCH_SPECS)


@pytest.mark.parametrize("case", ARCHS)
def test_exact_on_every_architecture(case):
    arch, overrides = ARCHS[case]
    model, tok = random_model(arch, n_layers=6, **overrides)
    worst, reused = check_exact(model, tok, load_task("synthetic-sentiment"), DROPS, STORED)
    assert worst < ATOL and reused > 0, worst


def test_exact_on_an_organism():
    "A trained organism (llama on synthetic-sentiment, cached after the first training)."
    model, tok = train_organism("llama", "synthetic-sentiment", progress=False)
    n = len(decoder_layers(model))
    drops = [list(range(n - 2, n)), [1, n - 1], [2, 3]]
    worst, reused = check_exact(model, tok, load_task("synthetic-sentiment"), drops, [1, 2, n - 2], n=16)
    assert worst < ATOL and reused > 0, worst


def test_skipped_layers_compute_nothing():
    "With `last` pruning, no layer below the first dropped one runs: their MLPs are never called."
    model, tok = random_model("llama", n_layers=6)
    t, seqs, plen = _prompts(tok, load_task("synthetic-sentiment"))
    lids, depth, calls = label_token_ids(tok, t), DepthReuse([4]), []
    class_log_probs(model, tok, seqs, lids, plen, depth=depth)
    hooks = [decoder_layers(model)[l].mlp.register_forward_hook(lambda *a, l=l: calls.append(l)) for l in range(6)]
    with attention_dropped(model, [4, 5]): class_log_probs(model, tok, seqs, lids, plen, depth=depth)
    for h in hooks: h.remove()
    assert calls and set(calls) == {4, 5}


def test_store_belongs_to_one_model_and_forgets_changed_weights():
    model, tok = random_model("qwen2", n_layers=4)
    other, _ = random_model("qwen2", n_layers=4, seed=1)
    t, seqs, plen = _prompts(tok, load_task("synthetic-sentiment"))
    lids, depth = label_token_ids(tok, t), DepthReuse([2])
    class_log_probs(model, tok, seqs, lids, plen, depth=depth)
    assert depth.nbytes > 0
    with pytest.raises(AttnPruneError, match="another model"):
        class_log_probs(other, tok, seqs, lids, plen, depth=depth)
    with torch.no_grad(): decoder_layers(model)[0].mlp.up_proj.weight.add_(0.01)
    with attention_dropped(model, [2, 3]):
        ref = class_log_probs(model, tok, seqs, lids, plen)
        got = class_log_probs(model, tok, seqs, lids, plen, depth=depth)
    assert depth.counts["reused"] == 0 and _max_diff(ref, got) < 1e-6  # stale states were not used


def _smollm2():
    if not dict(zip(builtin_models().name, builtin_models().installed))["smollm2-135m"]:
        pytest.skip(f"smollm2-135m not installed: {BUILTIN_MODELS['smollm2-135m'].install}")
    return load_model("smollm2-135m", dtype=torch.float32, device="cpu")


def test_exact_on_smollm2():
    "SmolLM2-135M (30 layers), SST-2 validation 2-shot: `last` k=5 and a spread set starting at layer 3."
    model, tok = _smollm2()
    task = load_task("sst2")
    drops = [list(range(25, 30)), [3, 9, 14, 20, 27]]
    worst, reused = check_exact(model, tok, task, drops, [3, 25], token_budget=600, n=12, prefixes=(True,))
    print(f"smollm2-135m: depth reuse vs none, largest |difference| {worst:.1e}")
    assert worst < ATOL and reused > 0, worst
