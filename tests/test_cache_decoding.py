"""Cached decoding with dropped attention layers, on every supported architecture (issue 20).

transformers 5.25 asks cache layer 0 for the sequence length; with layer 0's attention dropped that layer holds
nothing. These tests decode step by step with the KV cache, and with `generate()`, and compare every step with an
uncached forward of the whole sequence, for layer 0 dropped and for the first and last layers dropped together.
"""
import math
import pytest, torch
from attnprune_nb.organisms import random_model
from attnprune_nb.prompts import pad_batch
from attnprune_nb.prune import (ARCH_SPECS, DroppedCacheLayer, attention_dropped, kv_cache_bytes,
                                measure_efficiency)

torch.set_num_threads(1)
ATOL = 1e-4
N_LAYERS = 4
ARCHS = {  # case: (organism architecture, config overrides); covers every model_type of ARCH_SPECS
    "llama": ("llama", {}), "mistral": ("mistral", {}), "qwen2": ("qwen2", {}), "gemma": ("gemma", {}),
    "gemma2": ("gemma2", {"sliding_window": 8}), "gemma3_text": ("gemma3", {"sliding_window": 8}),
    "phi3": ("phi3", {}), "gpt2": ("gpt2", {}), "gpt_neox": ("gpt_neox", {}), "opt": ("opt", {}),
    "opt post-LN": ("opt", {"do_layer_norm_before": False}),
}
DROPS = {"layer 0": [0], "first and last": [0, N_LAYERS - 1]}


def test_every_architecture_is_covered():
    types = {random_model(a, **o)[0].config.model_type for a, o in ARCHS.values()}
    assert types == set(ARCH_SPECS)


_MODELS = {}
def _model(case):
    if case not in _MODELS:
        arch, overrides = ARCHS[case]
        _MODELS[case] = random_model(arch, n_layers=N_LAYERS, seed=1, **overrides)
    return _MODELS[case]


def _batch(tok, lengths=(20, 13), seed=0):
    "A left-padded batch of random token ids (longer than the sliding windows of 8)."
    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(4, len(tok), (n,), generator=g).tolist() for n in lengths]
    return pad_batch(ids, tok.pad_token_id)


def _extend(b, nxt):
    "The batch with one more real token `nxt` (batch,) appended to every row."
    ids = torch.cat([b["input_ids"], nxt[:, None]], 1)
    mask = torch.cat([b["attention_mask"], torch.ones_like(nxt)[:, None]], 1)
    pos = torch.cat([b["position_ids"], b["position_ids"][:, -1:] + 1], 1)
    return dict(input_ids=ids, attention_mask=mask, position_ids=pos)


@pytest.mark.parametrize("drop", DROPS)
@pytest.mark.parametrize("case", ARCHS)
@torch.no_grad()
def test_cached_steps_equal_uncached_forward(case, drop):
    "Prefill, then one token at a time with the cache: each step's logits equal the uncached forward's."
    model, tok = _model(case)
    b, steps = _batch(tok), 6
    T = b["input_ids"].shape[1]
    with attention_dropped(model, DROPS[drop]):
        ref = model(**b).logits  # uncached, the whole sequence
        head = {k: v[:, :T - steps] for k, v in b.items()}
        out = model(**head, use_cache=True)
        cache = out.cache
        assert isinstance(cache.layers[0], DroppedCacheLayer)
        got = [out.logits[:, -1]]
        for t in range(T - steps, T - 1):
            o = model(input_ids=b["input_ids"][:, t:t + 1], attention_mask=b["attention_mask"][:, :t + 1],
                      position_ids=b["position_ids"][:, t:t + 1], cache=cache, use_cache=True)
            got.append(o.logits[:, -1])
            assert cache.get_seq_length() == t + 1
        diff = (torch.stack(got, 1) - ref[:, T - steps - 1:T - 1]).abs().max().item()
    assert diff < ATOL, diff


@pytest.mark.parametrize("drop", DROPS)
@pytest.mark.parametrize("case", ARCHS)
@torch.no_grad()
def test_generate_equals_uncached_greedy(case, drop):
    "`generate()` (greedy, with its cache) gives the tokens and scores of greedy decoding by uncached forwards."
    model, tok = _model(case)
    b, new = _batch(tok, seed=1), 4
    with attention_dropped(model, DROPS[drop]):
        gen = model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], max_new_tokens=new,
                             min_new_tokens=new, do_sample=False, return_dict_in_generate=True,
                             output_scores=True, eos_token_id=None, pad_token_id=tok.pad_token_id)
        cur, scores = b, []
        for _ in range(new):
            logits = model(**cur).logits[:, -1]
            scores.append(logits)
            cur = _extend(cur, logits.argmax(-1))
    assert torch.equal(gen.sequences, cur["input_ids"])
    assert (torch.stack(gen.scores, 1) - torch.stack(scores, 1)).abs().max().item() < ATOL


@pytest.mark.parametrize("case", ARCHS)
@torch.no_grad()
def test_kv_cache_shrinks_by_the_dropped_layers(case):
    "Dropped layers hold no bytes, the kept ones exactly the full model's (the dropped share where layers are alike)."
    model, tok = _model(case)
    b = _batch(tok)
    full = kv_cache_bytes(model(**b, use_cache=True).cache, per_layer=True)
    for drop in DROPS.values():
        with attention_dropped(model, drop):
            pruned = kv_cache_bytes(model(**b, use_cache=True).cache, per_layer=True)
        assert pruned == [0 if l in drop else v for l, v in enumerate(full)]
        if len(set(full)) == 1: assert sum(pruned) * N_LAYERS == sum(full) * (N_LAYERS - len(drop))


@pytest.mark.parametrize("case", ARCHS)
def test_measure_efficiency_with_layer_0_dropped(case):
    "The outside check of issue 20: `measure_efficiency` returns numbers with layer 0 dropped."
    model, _ = _model(case)
    full = measure_efficiency(model, seq_len=16, decode_tokens=4, repeats=1)
    with attention_dropped(model, [0, N_LAYERS - 1]):
        e = measure_efficiency(model, seq_len=16, decode_tokens=4, repeats=1)
    assert e["dropped"] == [0, N_LAYERS - 1]
    assert e["prefill_seconds"] > 0 and math.isfinite(e["decode_tokens_per_second"])
    assert e["decode_tokens_per_second"] > 0
    assert e["kv_cache_bytes"] * N_LAYERS == full["kv_cache_bytes"] * (N_LAYERS - 2) or case.startswith("gemma")
    assert 0 < e["kv_cache_bytes"] < full["kv_cache_bytes"]
