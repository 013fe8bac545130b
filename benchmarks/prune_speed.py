"""Prefill time, decode throughput and KV cache of a realistic-shape Llama with attention layers dropped, side by side.

Compares, in one run: the full model; 25% and 50% of attention layers dropped (`drop_attention`); and 50% "masked"
(attention output zeroed by hooks but still computed, the way hook-based tools prune). Prints the share of prefill
FLOPs that dropping half the layers removes (the ideal) and ends with exactly
`prefill_saved_half=<1 - t_half/t_full> ideal_saved_half=<FLOP share removed> kv_ratio_half=<kv bytes half/full>`.

Usage: python benchmarks/prune_speed.py [--layers 12 --hidden 768 --seq 512 --repeats 5]
"""
import argparse, time
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from attnprune_nb.prune import drop_attention, restore, attention_masked, kv_cache_bytes

def timed(fn, repeats):
    fn(); ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))

@torch.no_grad()
def measure(model, ids, repeats, decode):
    prefill = timed(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1), repeats)
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1); kv = kv_cache_bytes(out.cache)
    def dec():
        o = model(input_ids=ids, use_cache=True, logits_to_keep=1); c = o.cache; nxt = o.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(decode): o = model(input_ids=nxt, cache=c, use_cache=True); nxt = o.logits[:, -1:].argmax(-1)
        return decode / (time.perf_counter() - t0)
    tps = float(np.median([dec() for _ in range(2)]))
    return prefill, tps, kv

def flops(cfg, s):
    d, h, kvh = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads; hd = d // h
    attn = 2 * s * d * (h * hd + 2 * kvh * hd) + 2 * s * h * hd * d + 2 * 2 * s * s * h * hd  # q,k,v,o projections + QK^T and AV
    mlp = 2 * s * 3 * d * cfg.intermediate_size
    return attn, mlp, 2 * d * cfg.vocab_size  # last-position logits only

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12); ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12); ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=32000); ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5); ap.add_argument("--decode", type=int, default=32)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.heads, max_position_embeddings=a.seq + a.decode + 8)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, a.vocab, (1, a.seq))
    print(f"Llama {a.layers} layers, hidden {a.hidden}, ffn {a.ffn}, seq {a.seq}, torch threads {torch.get_num_threads()}")
    rows = {}
    rows["full"] = measure(model, ids, a.repeats, a.decode)
    q, h = list(range(a.layers - a.layers // 4, a.layers)), list(range(0, a.layers, 2))  # 25%: deepest; 50%: every other, layer 0 included
    drop_attention(model, q); rows["drop 25%"] = measure(model, ids, a.repeats, a.decode); restore(model)
    drop_attention(model, h); rows["drop 50%"] = measure(model, ids, a.repeats, a.decode); restore(model)
    with attention_masked(model, h): rows["masked 50%"] = measure(model, ids, a.repeats, a.decode)
    t_full, tps_full, kv_full = rows["full"]
    print(f"{'variant':<12}{'prefill_s':>10}{'saved':>8}{'decode_tok/s':>14}{'speedup':>9}{'kv_MB':>8}{'kv_ratio':>9}")
    for k, (t, tps, kv) in rows.items():
        print(f"{k:<12}{t:>10.3f}{1 - t / t_full:>8.3f}{tps:>14.1f}{tps / tps_full:>9.2f}{kv / 2**20:>8.2f}{kv / kv_full:>9.3f}")
    attn, mlp, head = flops(cfg, a.seq)
    ideal = len(h) * attn / (a.layers * (attn + mlp) + head)
    print(f"ideal (FLOPs): attention is {attn / (attn + mlp):.3f} of a layer; dropping half removes {ideal:.3f} of prefill FLOPs")
    t_half, _, kv_half = rows["drop 50%"]
    print(f"prefill_saved_half={1 - t_half / t_full:.4f} ideal_saved_half={ideal:.4f} kv_ratio_half={kv_half / kv_full:.4f}")

if __name__ == "__main__":
    main()
