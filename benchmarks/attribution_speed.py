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
    "The model, tokenizer and the SST-2 task with `shots` demonstrations (built-ins and the sst2 task when present)."
    if model_name == "organism" or not Path("/tmp/markers/builtins_cached").exists() and model_name == "smollm2-135m":
        from attnprune_nb.organisms import train_organism
        task = load_task(str(SST2))
        model, tok = train_organism("llama", task, progress=False)
        model_name = "llama organism (built-ins not cached yet)"
    else:
        from attnprune_nb.models import load_model
        model, tok = load_model(model_name, dtype=torch.float32, device="cpu")
        try: task = load_task("sst2")
        except Exception: task = load_task(str(SST2))
    if shots:
        if hasattr(task, "with_shots"): task = task.with_shots(shots, seed)
        else:  # stand-in until Task.with_shots exists: one demonstration per class, round robin
            tr = task.split("train")
            demos = [(tr[tr.label == c % task.n_classes].text.iloc[c // task.n_classes], c % task.n_classes) for c in range(shots)]
            prefix = "".join(task.prompt(t) + " " + task.label_words[c] + "\n" for t, c in demos)
            task = replace(task, template=prefix + task.template)
    return model.float().eval(), tok, task, model_name


def captum_ig(model, tok, ids, span, target_ids, baseline_id, steps):
    "Captum's LLMGradientAttribution over LayerIntegratedGradients on one full prompt; text-token scores."
    llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    inp = TextTokenInput("x", tok, baselines=baseline_id)
    inp.inp_tensor = inp.itp_tensor = torch.tensor([ids])  # exactly our encoded prompt
    inp.values, inp.n_itp_features = tok.convert_ids_to_tokens(ids), len(ids)
    a, b = span
    base = torch.tensor([ids[:a] + [baseline_id] * (b - a) + ids[b:]])
    res = llm.attribute(inp, target=torch.tensor(target_ids), n_steps=steps, baselines=base)
    return res.seq_attr.detach().cpu().numpy()[a:b]


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
    rhos = []
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
            theirs = [captum_ig(model, tok, ids, sp, lids[y], pad, a.steps)
                      for ids, sp, y in zip(chunk.input_ids, chunk.spans, ours.targets)]
            t_captum += time.perf_counter() - t0
        mem_captum = max(mem_captum, m.mib)
        rhos += [spearmanr(o, t).statistic for o, t in zip(ours.scores, theirs) if len(o) >= 3]
    n_tok = [len(i) for i in enc.input_ids]
    print(f"{name}, task {task.name} ({split}, {a.shots}-shot), {a.n} examples, prompts of {np.mean(n_tok):.0f} tokens "
          f"({ours.info['prefix_len']} shared prefix), n_steps {a.steps}, {torch.get_num_threads()} threads")
    print(f"batched IG with prefix reuse {t_ours:.1f}s (peak +{mem_ours:.0f} MiB); captum LLMGradientAttribution per "
          f"example {t_captum:.1f}s (peak +{mem_captum:.0f} MiB); token budget {os.environ.get('ATTNPRUNE_TOKEN_BUDGET', 'default')}")
    print(f"spearman over text tokens, {len(rhos)} examples: mean {np.mean(rhos):.4f}, min {np.min(rhos):.4f}")
    print(f"ig_speedup={t_captum / t_ours:.2f} ig_agreement={np.mean(rhos):.4f}")


if __name__ == "__main__":
    main()
