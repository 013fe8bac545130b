"""The faithfulness evaluation against a loop of one forward pass per example per perturbation, side by side.

The real workload (issue 13): smollm2-135m, SST-2 validation with a 2-shot prompt, CPU fp32, input x gradient
attributions (`--model organism` for a tiny llama organism instead). Three ways to get the same numbers:

- ours: `faithfulness` with its defaults (comprehensiveness and sufficiency at 1, 5, 10, 20 and 50%, the empty text,
  the decision-flip curve, leave-one-out for Kendall tau, soft sufficiency and comprehensiveness), every
  perturbation of every example in token-budgeted batches, only text and suffix run against the cached prompt prefix,
  each distinct perturbation scored once and the flip curve stopped at each example's first flip;
- the loop: a plain independent implementation that scores every perturbation of the evaluation (each k, the empty
  text, every point of the flip curve, every leave-one-out, both soft masks) alone on its full prompt, one forward
  pass each, then turns them into metrics with `example_metrics`: `faithfulness_speedup` is its time over ours;
- the same algorithm unbatched: `faithfulness(..., prefix_reuse=False, token_budget=1)`, one sequence per pass on
  the full prompt, but with ours' deduplication and early stop (what batching and prefix reuse alone buy).

The three are timed interleaved, chunk by chunk, so that load on a shared machine hits them alike, and their
values are compared (printed).

Ends with exactly `faithfulness_speedup=<ratio>`.

Usage: python benchmarks/faithfulness_speed.py [--n 8 --chunk 4 --method input_x_gradient --model smollm2-135m]
"""
import argparse, time
from dataclasses import replace
import numpy as np
import pandas as pd
import torch
from attnprune_nb.data import sample_split
from attnprune_nb.prompts import encode_prompts, label_token_ids
from attnprune_nb.attribution import attribute, perturb, score_perturbed, score_masked, example_key
from attnprune_nb.faithfulness import (faithfulness, K_PERCENTS, rationale_size, token_order, soft_masks,
                                       example_metrics, metric_rows)
from attribution_speed import PeakRSS, load_workload


def one(model, tok, ids, lids):
    "Class log-probs of one full prompt, alone in its forward pass."
    return score_perturbed(model, tok, [(ids, ())], lids, 0, 10**6)[0]


def loop_example(model, tok, lids, ids, span, s, y, base_lp, dim, ks=K_PERCENTS, seed=0):
    "Every perturbation of one example scored alone on its full prompt; its metrics, as `faithfulness` reports them."
    L, order, pad = len(s), token_order(s), tok.pad_token_id
    def lp_without(mask): return one(model, tok, perturb(ids, span, mask, "delete", pad)[0], lids)
    probs = {("empty", None): np.exp(lp_without(np.ones(L, bool)))}
    for k in ks:
        top = np.zeros(L, bool)
        top[order[:rationale_size(L, k)]] = True
        probs["comp", k], probs["suff", k] = np.exp(lp_without(top)), np.exp(lp_without(~top))
    for j in range(1, L + 1): probs["flip", j] = np.exp(lp_without(np.isin(np.arange(L), order[:j])))
    eff = np.array([base_lp[y] - lp_without(np.arange(L) == j)[y] for j in range(L)])
    a, b = span
    soft = []
    for m in soft_masks(s, dim, seed, example_key(ids[a:b])):
        keep = np.ones((len(ids), dim), bool)
        keep[a:b] = m
        soft.append(np.exp(score_masked(model, tok, [ids], [keep], lids, 0, 10**6)[0, y]))
    m = example_metrics(np.exp(base_lp[y]), probs, y, L, ks, 20, tuple(soft))
    m["loo_kendall_tau"] = tau_by_pairs(s, eff)
    return m


def tau_by_pairs(s, e, resolution=1e-3, noise=1e-5):
    "Kendall tau-b pair by pair (06's convention): values closer than `resolution` of a side's max |value| tie."
    if len(s) < 2 or max(abs(x) for x in e) < noise: return np.nan
    both = concordant = ties_s = ties_e = 0
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            ds = 0 if abs(s[i] - s[j]) <= resolution * max(abs(x) for x in s) else np.sign(s[i] - s[j])
            de = 0 if abs(e[i] - e[j]) <= resolution * max(abs(x) for x in e) else np.sign(e[i] - e[j])
            both, concordant = both + 1, concordant + ds * de
            ties_s, ties_e = ties_s + (ds == 0), ties_e + (de == 0)
    n = np.sqrt((both - ties_s) * (both - ties_e))
    return concordant / n if n else np.nan


def tidy(metrics:list, method:str)->pd.DataFrame:
    "Per-example metric dicts as `faithfulness`' rows."
    rows = [r for i, m in enumerate(metrics) for r in metric_rows(i, method, m)]
    return pd.DataFrame(rows, columns=["example", "method", "metric", "k", "value"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=4, help="examples per interleaved chunk")
    ap.add_argument("--method", default="input_x_gradient")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--shots", type=int, default=2)
    a = ap.parse_args()
    model, tok, task, name = load_workload(a.model, a.shots)
    split = "validation" if "validation" in task.splits else task.default_split()
    enc = encode_prompts(tok, task, sample_split(task.split(split), a.n, 0).text.tolist())
    attr = attribute(model, tok, task, enc, a.method)
    lids, dim = label_token_ids(tok, task), model.get_input_embeddings().weight.shape[1]
    times, mems, frames = dict(ours=0.0, loop=0.0, unbatched=0.0), dict(ours=0.0, loop=0.0, unbatched=0.0), \
        dict(ours=[], loop=[], unbatched=[])
    base = attr.info["base_log_probs"]
    for s in range(0, a.n, a.chunk):
        sl = slice(s, s + a.chunk)
        part = replace(attr, scores=attr.scores[sl], targets=attr.targets[sl],
                       enc=replace(enc, input_ids=enc.input_ids[sl], spans=enc.spans[sl], word_ids=enc.word_ids[sl]),
                       info=dict(attr.info, base_log_probs=base[sl]))
        runs = dict(ours=lambda: faithfulness(model, tok, task, part),
                    loop=lambda: tidy([loop_example(model, tok, lids, ids, sp, sc, y, blp, dim) for ids, sp, sc, y, blp
                                       in zip(part.enc.input_ids, part.enc.spans, part.scores, part.targets,
                                              part.info["base_log_probs"])], a.method),
                    unbatched=lambda: faithfulness(model, tok, task, part, prefix_reuse=False, token_budget=1))
        for key, fn in runs.items():
            with PeakRSS() as m:
                t0 = time.perf_counter()
                df = fn()
                times[key] += time.perf_counter() - t0
            mems[key] = max(mems[key], m.mib)
            frames[key].append(df.assign(example=df.example + s))
    dfs = {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}
    key = ["example", "metric", "k"]
    ours = dfs["ours"].set_index(key).value
    n_tok = [len(i) for i in enc.input_ids]
    print(f"{name}, task {task.name} ({split}, {a.shots}-shot), {a.n} examples, prompts of {np.mean(n_tok):.0f} tokens "
          f"({attr.info['prefix_len']} shared prefix), {sum(len(x) for x in attr.scores)} text tokens, "
          f"method {a.method}, {torch.get_num_threads()} threads")
    for k, label in (("ours", "ours: batched, prefix reuse"), ("loop", "loop: every perturbation alone, full prompt"),
                     ("unbatched", "ours unbatched: one sequence per pass, full prompt")):
        other = dfs[k].set_index(key).value.reindex(ours.index)
        d = np.abs(other.to_numpy() - ours.to_numpy())
        raw = ours.index.get_level_values("metric").str.match("(comprehensiveness|sufficiency)$")
        same = "" if k == "ours" else (f"; max |difference| from ours: comprehensiveness/sufficiency "
                                       f"{np.nanmax(d[raw]):.1e}, all {len(d)} values {np.nanmax(d):.1e}")
        print(f"{label}: {times[k]:.1f}s (peak +{mems[k]:.0f} MiB){same}")
    print(f"batching and prefix reuse alone (same algorithm): {times['unbatched'] / times['ours']:.2f}x")
    print(f"faithfulness_speedup={times['loop'] / times['ours']:.2f}")


if __name__ == "__main__":
    main()
