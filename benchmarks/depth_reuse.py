"""Scoring pruned models with and without depth reuse, side by side (issue 21).

The real workload: smollm2-135m (the built-in LLM, 30 layers; `--model organism` takes a tiny random llama
organism while the built-ins are not cached), SST-2 validation (the packaged `sst2` task) with a 2-shot prompt, CPU
fp32, n = 64. The full model is scored once with a `prune.DepthReuse` that records the states entering the first
dropped layer of each pruned model below; then each pruned model is scored with `classify.class_log_probs` twice,
interleaved (alternating which side goes first, `--repeats` times, medians reported): without depth reuse (every
layer runs, with the shared prefix run once: the package's ordinary path) and with it (only the layers from
min(D) up run, started from the stored states). The prefix store is cleared before every timed run, so each
side pays for its prefix. Pruned models: `last` at k = 5 of 30 (1/6; layers 25-29) and `similarity` at k = 5 (the
five lowest importances from `layers_to_drop`, on 32 calibration prompts of the task's train split).

The ideal speed-up of a pruned model is (layers of the full model) / (layers run), 30 / (30 - min(D)): it leaves
out what does not shrink with the layers (embeddings, the LM head on the last position, batching, the prefix).
Ends with exactly `depth_speedup_last=<ratio> depth_speedup_similarity=<ratio> ideal_last=<ratio>
max_abs_diff=<largest |difference| of class log-probabilities and label-word masses, with vs without>`.

Usage: python benchmarks/depth_reuse.py [--n 64 --shots 2 --k 5 --repeats 5 --model smollm2-135m]
"""
import argparse, time
import numpy as np
import torch
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.prompts import encode_prompts, label_token_ids, model_max_length
from attnprune_nb.classify import class_log_probs, default_token_budget
from attnprune_nb.prune import DepthReuse, attention_dropped, decoder_layers, layers_to_drop


def load(name):
    "The model (fp32, CPU) and tokenizer to benchmark."
    if name == "organism":
        from attnprune_nb.organisms import random_model
        return random_model("llama", "sst2", n_layers=12)
    from attnprune_nb.models import load_model
    return load_model(name, dtype="float32", device="cpu")


def timed(model, tok, seqs, lids, prefix_len, budget, depth=None):
    "One scoring run, counting the prefix's cost: (seconds, (log-probs, label mass))."
    getattr(model, "_attnprune_prefixes", {}).clear()
    t0 = time.perf_counter()
    out = class_log_probs(model, tok, seqs, lids, prefix_len=prefix_len, token_budget=budget, depth=depth)
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--shots", type=int, default=2)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    t0 = time.perf_counter()
    model, tok = load(a.model)
    n_layers = len(decoder_layers(model))
    print(f"model {a.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, {n_layers} layers, "
          f"loaded in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}")
    task = load_task("sst2").with_shots(a.shots, seed=a.seed)
    ex = sample_split(task.split("validation"), a.n, seed=a.seed)
    enc = encode_prompts(tok, task, ex.text.tolist(), max_length=model_max_length(model))
    lids, budget = label_token_ids(tok, task), default_token_budget(model)
    lengths = np.array([len(s) for s in enc.input_ids])
    print(f"SST-2 validation, {a.shots}-shot prompt, n={len(ex)}: {lengths.mean():.0f} tokens per prompt on average, "
          f"of which {enc.prefix_len} are the shared prefix; token budget {budget}")

    drops = {"last": layers_to_drop(model, a.k, "last"),
             "similarity": layers_to_drop(model, a.k, "similarity", tok, task, n=32, seed=a.seed)}
    depth = DepthReuse.for_drops(drops.values())
    for name, d in drops.items():
        print(f"{name}: drops {d}, runs layers {min(d)}-{n_layers - 1} with reuse "
              f"(ideal speed-up {n_layers / (n_layers - min(d)):.2f})")

    timed(model, tok, enc.input_ids[:4], lids, enc.prefix_len, budget)  # warm up
    plain_full, _ = timed(model, tok, enc.input_ids, lids, enc.prefix_len, budget)
    rec_full, full = timed(model, tok, enc.input_ids, lids, enc.prefix_len, budget, depth)
    print(f"full model: {plain_full:.2f} s plain, {rec_full:.2f} s while recording; stored {depth}")

    runs = {(name, side): [] for name in drops for side in ("plain", "reuse")}
    outs, diff = {}, 0.0
    for r in range(a.repeats):
        for name, d in drops.items():
            with attention_dropped(model, d):
                for side in (("plain", "reuse") if r % 2 == 0 else ("reuse", "plain")):
                    secs, out = timed(model, tok, enc.input_ids, lids, enc.prefix_len, budget,
                                      depth if side == "reuse" else None)
                    runs[name, side].append(secs)
                    outs[name, side] = out
            diff = max(diff, *(np.abs(outs[name, "plain"][i] - outs[name, "reuse"][i]).max() for i in (0, 1)))
        print(f"  round {r + 1}: " + ", ".join(f"{n} {s} {v[-1]:.2f} s" for (n, s), v in runs.items()), flush=True)
    speed = {}
    for name, d in drops.items():
        plain, reuse = np.median(runs[name, "plain"]), np.median(runs[name, "reuse"])
        speed[name] = plain / reuse
        acc = float(np.mean(outs[name, "reuse"][0].argmax(-1) == ex.label.to_numpy()))
        ideal = n_layers / (n_layers - min(d))
        print(f"{name:>10}: plain {plain:.2f} s, reuse {reuse:.2f} s (medians of {a.repeats}); speed-up "
              f"{speed[name]:.2f} of ideal {ideal:.2f} ({speed[name] / ideal:.2f}); accuracy {acc:.3f}")
    print(f"reuse counts: {depth.counts}")
    ideal_last = n_layers / (n_layers - min(drops["last"]))
    print(f"depth_speedup_last={speed['last']:.2f} depth_speedup_similarity={speed['similarity']:.2f} "
          f"ideal_last={ideal_last:.2f} max_abs_diff={diff:.1e}")


if __name__ == "__main__": main()
