"""Calibration of the llama organism on ../shared/data/sst2 (test split) with 0, 1, 2 and half of its
attention layers dropped (strategy `similarity`): accuracy, ECE, smooth ECE, Brier, NLL and the temperature
fitted on the held-out calibration split (carved off train; the organism never saw it), with paired bootstrap
95% intervals for the change from the full model. Also IG / occlusion / random comprehensiveness AOPC on
--n-faith test examples.

Usage: python benchmarks/calibration_sst2.py [--resamples 1000 --n-faith 200]
"""
import argparse
from pathlib import Path
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.organisms import train_organism
from attnprune_nb.classify import classify
from attnprune_nb.prune import layers_to_drop, attention_dropped, decoder_layers
from attnprune_nb.calibration import paired_bootstrap, fit_temperature
from attnprune_nb.attribution import attribute
from attnprune_nb.faithfulness import faithfulness, summarise_faithfulness

SST2 = Path(__file__).resolve().parents[1].parent/"shared"/"data"/"sst2"
METRICS = ["accuracy", "ece", "smooth_ece", "brier", "nll"]
METHODS = ("integrated_gradients", "occlusion", "random")


def comprehensiveness_aopc(model, tok, task, texts):
    "Comprehensiveness AOPC of each method on `texts`."
    out = {}
    for m in METHODS:
        f = summarise_faithfulness(faithfulness(model, tok, task, attribute(model, tok, task, texts, m),
                                                soft=False, loo=False))
        out[m] = float(f[f.metric == "comprehensiveness_aopc"].value.iloc[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--n-faith", type=int, default=200)
    a = ap.parse_args()
    task = load_task(str(SST2))
    fit_split = "calibration" if "calibration" in task.splits else "validation"
    model, tok = train_organism("llama", task, progress=False)
    n = len(decoder_layers(model))
    fx = sample_split(task.split("test"), a.n_faith, 0).text.tolist()
    full = None
    print(f"temperature fitted on {fit_split!r}")
    print(f"{'k':>2} {'dropped':<10} {'metric':<11}{'value':>8}{'change':>9}  95% CI of change      p")
    for k in (0, 1, 2, n // 2):
        layers = layers_to_drop(model, k, "similarity", tok, task) if k else []
        with attention_dropped(model, layers):
            test, _ = classify(model, tok, task, "test")
            held, _ = classify(model, tok, task, fit_split)
            T = fit_temperature(held.log_probs, held.labels)
            aopc = comprehensiveness_aopc(model, tok, task, fx)
        if full is None: full = test
        for m in METRICS:
            r = paired_bootstrap(m, full.probs, test.probs, test.labels, a.resamples if k else 1, 0)
            ci = f"{r['diff']:>+9.4f}  [{r['low']:+.4f}, {r['high']:+.4f}]  {r['p_value']:.3f}" if k else ""
            print(f"{k:>2} {str(layers):<10} {m:<11}{r['b']:>8.4f}{ci}")
        aopc_text = ", ".join(f"{m} {v:.4f}" for m, v in aopc.items())
        print(f"{k:>2} {str(layers):<10} temperature {T:.4f}, comprehensiveness AOPC {aopc_text}", flush=True)


if __name__ == "__main__":
    main()
