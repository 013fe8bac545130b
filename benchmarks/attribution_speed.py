"""Batched integrated gradients against captum's LLMGradientAttribution run per example, side by side.

Same model (the llama organism on ../shared/data/sst2), same examples, n_steps 50, same target (the predicted
class's label-word log-probability, as captum's LLM wrapper targets it) and the same baseline (token id 0 at every
prompt position, captum's default). Reports the mean per-example Spearman correlation of the text-token scores and
ends with exactly `ig_speedup=<ratio> ig_agreement=<spearman>`.

Usage: python benchmarks/attribution_speed.py [--n 100]
"""
import argparse, time
from pathlib import Path
import numpy as np
from scipy.stats import spearmanr
from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.organisms import train_organism
from attnprune_nb.attribution import attribute

SST2 = Path(__file__).resolve().parents[1].parent/"shared"/"data"/"sst2"

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--n", type=int, default=100); ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    task = load_task(str(SST2)); model, tok = train_organism("llama", task, progress=False)
    ex = sample_split(task.split("test"), a.n, 0); texts = ex.text.tolist()
    t0 = time.perf_counter()
    ours = attribute(model, tok, task, texts, "integrated_gradients", n_steps=a.steps, batch_size=16, baseline_id=0, normalise=False, baseline_scope="all")
    t_ours = time.perf_counter() - t0
    llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    rhos, t0 = [], time.perf_counter()
    for i, text in enumerate(texts):
        res = llm.attribute(TextTokenInput(task.prompt(text), tok, baselines=0), target=task.label_words[ours.targets[i]], n_steps=a.steps)
        a0, a1 = ours.enc.spans[i]; theirs = res.seq_attr.detach().cpu().numpy()[a0:a1]
        if a1 - a0 >= 3: rhos.append(spearmanr(ours.scores[i], theirs).statistic)
    t_captum = time.perf_counter() - t0
    print(f"{a.n} examples, n_steps {a.steps}: batched {t_ours:.2f}s, captum LLMGradientAttribution per example {t_captum:.2f}s; "
          f"spearman over {len(rhos)} examples: mean {np.mean(rhos):.4f}, min {np.min(rhos):.4f}")
    print(f"ig_speedup={t_captum / t_ours:.2f} ig_agreement={np.mean(rhos):.4f}")

if __name__ == "__main__":
    main()
