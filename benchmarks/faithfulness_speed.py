"""The faithfulness evaluation against a loop of one forward pass per example per perturbation, side by side.

The real workload (issue 13): smollm2-135m (once the built-ins are cached; `--model organism` for the llama
organism), SST-2 validation with a 2-shot prompt, CPU fp32, input x gradient attributions. Ours: `faithfulness`
with its defaults (every perturbation of every example in token-budgeted batches, only text and suffix run against
the cached prompt prefix). The loop: the same perturbations, each scored alone on its full prompt (one forward pass
per example per perturbation: `prefix_reuse=False` with a token budget of one sequence). The two are timed
interleaved, chunk by chunk, and must give the same numbers (checked and printed).

Ends with exactly `faithfulness_speedup=<ratio>`.

Usage: python benchmarks/faithfulness_speed.py [--n 8 --chunk 4 --method input_x_gradient --model smollm2-135m]
"""
import argparse, time
from dataclasses import replace
import numpy as np
import torch
from attnprune_nb.data import sample_split
from attnprune_nb.prompts import encode_prompts
from attnprune_nb.attribution import attribute
from attnprune_nb.faithfulness import faithfulness
from attribution_speed import PeakRSS, load_workload


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
    t_ours = t_loop = mem_ours = mem_loop = 0.0
    ours, loop = [], []
    for s in range(0, a.n, a.chunk):
        part = replace(attr, scores=attr.scores[s:s + a.chunk], targets=attr.targets[s:s + a.chunk],
                       enc=replace(enc, input_ids=enc.input_ids[s:s + a.chunk], spans=enc.spans[s:s + a.chunk],
                                   word_ids=enc.word_ids[s:s + a.chunk]),
                       info=dict(attr.info, base_log_probs=attr.info["base_log_probs"][s:s + a.chunk]))
        with PeakRSS() as m:
            t0 = time.perf_counter()
            ours.append(faithfulness(model, tok, task, part))
            t_ours += time.perf_counter() - t0
        mem_ours = max(mem_ours, m.mib)
        with PeakRSS() as m:
            t0 = time.perf_counter()
            loop.append(faithfulness(model, tok, task, part, prefix_reuse=False, token_budget=1))
            t_loop += time.perf_counter() - t0
        mem_loop = max(mem_loop, m.mib)
    ours, loop = (pd_concat(x) for x in (ours, loop))
    raw = ours.metric.str.match("(comprehensiveness|sufficiency)").to_numpy()
    d = np.abs(ours.value.to_numpy() - loop.value.to_numpy())
    n_tok = [len(i) for i in enc.input_ids]
    print(f"{name}, task {task.name} ({split}, {a.shots}-shot), {a.n} examples, prompts of {np.mean(n_tok):.0f} tokens "
          f"({attr.info['prefix_len']} shared prefix), {sum(len(x) for x in attr.scores)} text tokens, "
          f"method {a.method}, {torch.get_num_threads()} threads")
    print(f"faithfulness batched with prefix reuse {t_ours:.1f}s (peak +{mem_ours:.0f} MiB); one forward per example "
          f"per perturbation on the full prompt {t_loop:.1f}s (peak +{mem_loop:.0f} MiB)")
    print(f"max |difference| of comprehensiveness/sufficiency values {np.nanmax(d[raw]):.2e}; "
          f"of all {len(d)} values {np.nanmax(d):.2e}")
    print(f"faithfulness_speedup={t_loop / t_ours:.2f}")


def pd_concat(frames):
    import pandas as pd
    return pd.concat(frames, ignore_index=True)


if __name__ == "__main__":
    main()
