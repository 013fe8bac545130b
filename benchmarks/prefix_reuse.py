"""Class log-probabilities with and without shared-prefix KV reuse, side by side (issue 13).

The real workload: smollm2-135m (the built-in LLM; `--model` also takes a model folder, a .gguf file, or
`organism` for a tiny random llama organism while the built-ins are not cached), SST-2 validation (the packaged
`sst2` task) with a 2-shot prompt, CPU fp32, n = 64. Both sides score the same encoded prompts with
`classify.class_log_probs` and the same token budget; one passes `prefix_len=enc.prefix_len` (the prefix, i.e.
special tokens, demonstrations and template start, runs once and each batch runs only text + suffix against its
KV cache), the other `prefix_len=0` (every prompt runs whole). The prefix store is cleared before every timed
reuse run, so its one-off cost is counted. The two are timed interleaved (alternating which goes first) so that
load on a shared machine hits both alike; the reported times are medians over `--repeats`. Peak memory is the
process's resident set sampled every 10 ms during each run, above what it was just before.

Ends with exactly `prefix_speedup=<median time without / with reuse> max_abs_diff=<largest |difference| of the
class log-probabilities and label-word masses>`.

Usage: python benchmarks/prefix_reuse.py [--n 64 --shots 2 --repeats 3 --model smollm2-135m]
"""
import argparse, time
import numpy as np
from peak_memory import PeakRSS
import torch
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.prompts import encode_prompts, label_token_ids, model_max_length
from attnprune_nb.classify import class_log_probs, default_token_budget


def load(name):
    "The model (fp32, CPU) and tokenizer to benchmark."
    if name == "organism":
        from attnprune_nb.organisms import random_model
        return random_model("llama", "sst2")
    from attnprune_nb.models import load_model
    return load_model(name, dtype="float32", device="cpu")


def timed(model, tok, seqs, lids, prefix_len, budget):
    "One scoring run: (seconds, peak MiB, (log-probs, label mass))."
    if prefix_len: getattr(model, "_attnprune_prefixes", {}).clear()  # count the prefix's one-off cost
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = class_log_probs(model, tok, seqs, lids, prefix_len=prefix_len, token_budget=budget)
        secs = time.perf_counter() - t0
    return secs, mem.mib, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--shots", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    t0 = time.perf_counter()
    model, tok = load(a.model)
    print(f"model {a.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, "
          f"{model.config.num_hidden_layers} layers, loaded in {time.perf_counter() - t0:.1f} s; "
          f"torch threads {torch.get_num_threads()}")
    task = load_task("sst2").with_shots(a.shots, seed=a.seed)
    ex = sample_split(task.split("validation"), a.n, seed=a.seed)
    enc = encode_prompts(tok, task, ex.text.tolist(), max_length=model_max_length(model))
    lids, budget = label_token_ids(tok, task), default_token_budget(model)
    lengths = np.array([len(s) for s in enc.input_ids])
    print(f"SST-2 validation, {a.shots}-shot prompt, n={len(ex)}: {lengths.mean():.0f} tokens per prompt on average "
          f"({lengths.min()}-{lengths.max()}), of which {enc.prefix_len} are the shared prefix; "
          f"token budget {budget}; label words {[tok.decode(i) for i in lids]}")

    timed(model, tok, enc.input_ids[:4], lids, enc.prefix_len, budget)  # warm up both paths
    timed(model, tok, enc.input_ids[:4], lids, 0, budget)
    runs = {"full": [], "reuse": []}
    for r in range(a.repeats):
        for side in (("full", "reuse") if r % 2 == 0 else ("reuse", "full")):
            runs[side].append(timed(model, tok, enc.input_ids, lids, enc.prefix_len if side == "reuse" else 0, budget))
            print(f"  run {r + 1} {side}: {runs[side][-1][0]:.2f} s, peak RSS +{runs[side][-1][1]:.0f} MiB", flush=True)
    for side, rs in runs.items():
        secs = [s for s, _, _ in rs]
        acc = float(np.mean(rs[0][2][0].argmax(-1) == ex.label.to_numpy()))
        print(f"{side:>5}: {np.median(secs):.2f} s median of {[round(s, 2) for s in secs]} "
              f"({len(ex) / np.median(secs):.1f} prompts/s), peak RSS +{max(m for _, m, _ in rs):.0f} MiB, "
              f"accuracy {acc:.3f}, label mass {rs[0][2][1].mean():.3f}")
    full, reuse = runs["full"][0][2], runs["reuse"][0][2]
    diff = max(np.abs(full[0] - reuse[0]).max(), np.abs(full[1] - reuse[1]).max())
    speedup = np.median([s for s, _, _ in runs["full"]]) / np.median([s for s, _, _ in runs["reuse"]])
    print(f"prefix_speedup={speedup:.2f} max_abs_diff={diff:.1e}")


if __name__ == "__main__": main()
