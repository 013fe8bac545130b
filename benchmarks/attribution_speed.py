"""Batched integrated gradients with shared-prefix reuse against captum's LLMGradientAttribution, side by side.

The real workload (issue 13): smollm2-135m (once the built-ins are cached; `--model` takes any model, an organism
folder, or `organism` for the llama organism), SST-2 validation with a 2-shot prompt, CPU fp32. Both sides explain
the same full prompts (ours: encoded by `encode_prompts`, the same ids fed to captum), with the same n_steps, the
same target (the predicted class's label-word log-probability, summed over its tokens, as captum's LLM wrapper
targets it: `normalise=False`) and the same baseline (the text tokens replaced by the pad token, the template and
demonstrations unchanged). Captum runs `LLMGradientAttribution(LayerIntegratedGradients(...))` one example at a
time on the full prompt; ours runs `attribute(..., "integrated_gradients")`, batched by tokens with the prefix
cached. The two are timed interleaved, chunk by chunk, so that load on a shared machine hits both alike. Peak memory
is the process's resident set sampled during each side's work, above what it was just before.

Ends with exactly `ig_speedup=<ratio> ig_agreement=<mean Spearman over text tokens>`.

Usage: python benchmarks/attribution_speed.py [--n 8 --steps 32 --chunk 4 --model smollm2-135m --shots 2]
"""
import argparse, os, time
from dataclasses import replace
from pathlib import Path
import numpy as np
from peak_memory import PeakRSS
import torch
from scipy.stats import spearmanr
from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.prompts import encode_prompts, label_token_ids
from attnprune_nb.attribution import attribute

SST2 = Path(__file__).resolve().parents[1].parent/"shared"/"data"/"sst2"


def load_workload(model_name, shots, seed=0):
    "The model (fp32, CPU), tokenizer and the packaged SST-2 task with `shots` demonstrations."
    if model_name == "organism":  # a tiny llama organism trained on SST-2, for a quick look without the built-ins
        from attnprune_nb.organisms import train_organism
        task = load_task("sst2")
        model, tok = train_organism("llama", task, progress=False)
        model_name = "llama organism"
    else:
        from attnprune_nb.models import load_model
        model, tok = load_model(model_name, dtype=torch.float32, device="cpu")
        task = load_task("sst2")
    if shots: task = task.with_shots(shots, seed)
    return model.float().eval(), tok, task, model_name


def captum_ig(model, tok, ids, span, target_ids, baseline_id, steps):
    "Captum's LLMGradientAttribution over LayerIntegratedGradients on one full prompt: (text-token scores, sum of all)."
    llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    inp = TextTokenInput(tok.decode(ids), tok, baselines=baseline_id)
    inp.inp_tensor = inp.itp_tensor = torch.tensor([ids])  # exactly our encoded prompt
    inp.values, inp.n_itp_features = tok.convert_ids_to_tokens(ids), len(ids)
    # captum's input is a keep-indicator over tokens (1 = the token, else `baseline_id`): the baseline prompt keeps
    # the template and demonstrations and puts the baseline token in place of each text token, as ours does
    a, b = span
    keep = torch.ones(1, len(ids), dtype=torch.long)
    keep[0, a:b] = 0
    res = llm.attribute(inp, target=torch.tensor(target_ids), n_steps=steps, baselines=keep)
    seq = res.seq_attr.detach().cpu().numpy()
    return seq[a:b], float(seq.sum())


def label_log_prob(model, ids, target_ids):
    "Summed log-probability of the label-word tokens after the prompt `ids` (captum's target, for completeness)."
    with torch.no_grad():
        full = torch.tensor([list(ids) + list(target_ids)])
        lp = torch.log_softmax(model(full).logits[0].float(), -1)
    return float(sum(lp[len(ids) - 1 + j, t] for j, t in enumerate(target_ids)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=4, help="examples per interleaved chunk")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--shots", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(0)
    model, tok, task, name = load_workload(a.model, a.shots)
    split = "validation" if "validation" in task.splits else task.default_split()
    texts = sample_split(task.split(split), a.n, 0).text.tolist()
    enc = encode_prompts(tok, task, texts)
    lids, pad = label_token_ids(tok, task), tok.pad_token_id
    t_ours = t_captum = mem_ours = mem_captum = 0.0
    rhos, complete = [], []
    for s in range(0, a.n, a.chunk):
        chunk = replace(enc, input_ids=enc.input_ids[s:s + a.chunk], spans=enc.spans[s:s + a.chunk],
                        word_ids=enc.word_ids[s:s + a.chunk])
        with PeakRSS() as m:
            t0 = time.perf_counter()
            ours = attribute(model, tok, task, chunk, "integrated_gradients", n_steps=a.steps, baseline_id=pad, normalise=False)
            t_ours += time.perf_counter() - t0
        mem_ours = max(mem_ours, m.mib)
        with PeakRSS() as m:
            t0 = time.perf_counter()
            res = [captum_ig(model, tok, ids, sp, lids[y], pad, a.steps)
                   for ids, sp, y in zip(chunk.input_ids, chunk.spans, ours.targets)]
            t_captum += time.perf_counter() - t0
        mem_captum = max(mem_captum, m.mib)
        theirs = [r[0] for r in res]
        rhos += [spearmanr(o, t).statistic for o, t in zip(ours.scores, theirs) if len(o) >= 3]
        for ids, sp, y, o, (_, tot) in zip(chunk.input_ids, chunk.spans, ours.targets, ours.scores, res):
            base = list(ids[:sp[0]]) + [pad] * (sp[1] - sp[0]) + list(ids[sp[1]:])
            gap = label_log_prob(model, ids, lids[y]) - label_log_prob(model, base, lids[y])
            complete.append((gap, float(np.sum(o)), tot))
    n_tok = [len(i) for i in enc.input_ids]
    print(f"{name}, task {task.name} ({split}, {a.shots}-shot), {a.n} examples, prompts of {np.mean(n_tok):.0f} tokens "
          f"({ours.info['prefix_len']} shared prefix), n_steps {a.steps}, {torch.get_num_threads()} threads")
    print(f"batched IG with prefix reuse {t_ours:.1f}s (peak +{mem_ours:.0f} MiB); captum LLMGradientAttribution per "
          f"example {t_captum:.1f}s (peak +{mem_captum:.0f} MiB); token budget {os.environ.get('ATTNPRUNE_TOKEN_BUDGET', 'default')}")
    print(f"spearman over text tokens, {len(rhos)} examples: mean {np.mean(rhos):.4f}, min {np.min(rhos):.4f}")
    gap, s_ours, s_captum = np.array(complete).T
    print(f"completeness, f(x) - f(baseline) against the sum of scores: largest |gap - sum| ours "
          f"{np.max(np.abs(gap - s_ours)):.3f}, captum {np.max(np.abs(gap - s_captum)):.3f} (mean |gap| {np.mean(np.abs(gap)):.3f})")
    print(f"ig_speedup={t_captum / t_ours:.2f} ig_agreement={np.mean(rhos):.4f}")


if __name__ == "__main__":
    main()
