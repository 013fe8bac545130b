"""Prefill time, decode throughput and KV cache of a realistic-shape Llama with attention dropped, compared.

Compares, in one run: the full model; 25% and 50% of attention layers dropped (`drop_attention`); and 50%
"masked" (attention output zeroed by hooks but still computed, the way hook-based tools prune). Timings are
interleaved (round-robin over the variants, median per variant) so that drift on a shared machine hits all
variants alike. Prints the share of prefill FLOPs that dropping half the layers removes (the ideal) and ends
with exactly `prefill_saved_half=<1 - t_half/t_full> ideal_saved_half=<FLOP share removed>
kv_ratio_half=<kv bytes half/full>` (one line).

Usage: python benchmarks/prune_speed.py [--layers 12 --hidden 768 --seq 512 --rounds 7]
"""
import argparse, contextlib, time
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from attnprune_nb.prune import attention_dropped, attention_masked, kv_cache_bytes

@torch.no_grad()
def prefill(model, ids):
    "Seconds of one uncached forward of `ids` that keeps only the last position's logits."
    t0 = time.perf_counter()
    model(input_ids=ids, use_cache=False, logits_to_keep=1)
    return time.perf_counter() - t0

@torch.no_grad()
def decode(model, ids, n):
    "Greedy decoding tokens per second with the KV cache, after a prefill of `ids`."
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
    t0 = time.perf_counter()
    for _ in range(n): nxt = model(input_ids=nxt, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)
    return n / (time.perf_counter() - t0)

def flops(cfg, s):
    "Prefill FLOPs of one layer's attention and MLP for `s` tokens, and of the last-position logits."
    d, h, kvh = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
    hd = d // h
    projections = 2 * s * d * (h * hd + 2 * kvh * hd) + 2 * s * h * hd * d  # q, k, v and o
    scores = 2 * 2 * s * s * h * hd  # QK^T and AV
    mlp = 2 * s * 3 * d * cfg.intermediate_size
    return projections + scores, mlp, 2 * d * cfg.vocab_size

def parse_args():
    "The command line: model shape, sequence length, rounds and decoded tokens."
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--decode", type=int, default=32)
    return ap.parse_args()

def main():
    a = parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ffn,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                      max_position_embeddings=a.seq + a.decode + 8)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, a.vocab, (1, a.seq))
    quarter = list(range(a.layers - a.layers // 4, a.layers))
    half = list(range(0, a.layers, 2))  # includes layer 0
    variants = {"full": contextlib.nullcontext, "drop 25%": lambda: attention_dropped(model, quarter),
                "drop 50%": lambda: attention_dropped(model, half),
                "masked 50%": lambda: attention_masked(model, half)}
    print(f"Llama {a.layers} layers, hidden {a.hidden}, ffn {a.ffn}, seq {a.seq}, "
          f"torch threads {torch.get_num_threads()}, {a.rounds} interleaved rounds")
    t, tps, kv = {k: [] for k in variants}, {k: [] for k in variants}, {}
    for r in range(a.rounds + 1):
        for name, ctx in variants.items():
            with ctx():
                if r == 0:  # warm-up round, also measures the KV cache
                    with torch.no_grad():
                        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                        kv[name] = kv_cache_bytes(out.cache)
                    prefill(model, ids)
                    continue
                t[name].append(prefill(model, ids))
                if r <= 2: tps[name].append(decode(model, ids, a.decode))
    med = {k: float(np.median(v)) for k, v in t.items()}
    dec = {k: float(np.median(v)) for k, v in tps.items()}
    print(f"{'variant':<12}{'prefill_s':>10}{'saved':>8}{'decode_tok/s':>14}{'speedup':>9}"
          f"{'kv_MB':>8}{'kv_ratio':>9}")
    for k in variants:
        print(f"{k:<12}{med[k]:>10.3f}{1 - med[k] / med['full']:>8.3f}{dec[k]:>14.1f}"
              f"{dec[k] / dec['full']:>9.2f}{kv[k] / 2**20:>8.2f}{kv[k] / kv['full']:>9.3f}")
    attn, mlp, head = flops(cfg, a.seq)
    ideal = len(half) * attn / (a.layers * (attn + mlp) + head)
    print(f"ideal (FLOPs): attention is {attn / (attn + mlp):.3f} of a layer; "
          f"dropping half removes {ideal:.3f} of prefill FLOPs")
    print(f"prefill_saved_half={1 - med['drop 50%'] / med['full']:.4f} ideal_saved_half={ideal:.4f} "
          f"kv_ratio_half={kv['drop 50%'] / kv['full']:.4f}")

if __name__ == "__main__":
    main()
