"""The built-in pretrained LLMs on the six datasets of ../shared/data: accuracy, macro-F1, ECE (15 equal-width bins)
and label-word mass with the default prompt (each task's default template and label words, `--shots` demonstrations
from the train split, no chat template), raw and with contextual calibration (Zhao et al. 2021: content-free inputs
"N/A", "" and "[MASK]"), beside the majority-class baseline (the most frequent train class).

One model at a time, one row per (model, task, calibration), appended as soon as a task finishes: an interrupted
run loses nothing and a rerun skips the rows it already has.

Usage: python benchmarks/llm_evidence.py [--models smollm2-135m,gemma-3-270m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b]
           [--tasks sst2,sst5,mr,subj,trec,ag_news] [--n-sst2 200] [--n 150]
           [--n-model qwen2.5-coder-0.5b=100,qwen2.5-coder-1.5b=100]
           [--shots 2] [--seed 0]
           [--threads 1] [--out nbs/study/llm_evidence.csv]
"""
import argparse, gc, time, warnings
from pathlib import Path
import numpy as np
import pandas as pd
import torch
from attnprune_nb.core import atomic_write_text
from attnprune_nb.data import load_task, sample_split
from attnprune_nb.models import load_model, builtin_models
from attnprune_nb.prompts import encode_prompts, label_token_ids, model_max_length
from attnprune_nb.calibration import expected_calibration_error, contextual_calibration
from attnprune_nb import classify as C

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/"shared"/"data"
CONTENT_FREE = ["N/A", "", "[MASK]"]
KEY = ["model", "task", "split", "n", "shots", "seed", "calibration"]


def eval_split(task)->str:
    "validation where there is one (sst2, sst5), else test."
    return "validation" if "validation" in task.splits else "test"


def class_probs(model, tok, task, texts):
    "(class probabilities (n, C), label mass (n,)): the package's scorer, the shared prefix run once."
    enc = encode_prompts(tok, task, list(texts), max_length=model_max_length(model), chat=False)
    lp, mass = C.class_log_probs(model, tok, enc.input_ids, label_token_ids(tok, task), prefix_len=enc.prefix_len)
    return np.exp(lp), mass


def majority(train_labels, labels, n_classes):
    "Accuracy and macro-F1 of always predicting the most frequent train class."
    pred = np.full(len(labels), np.bincount(train_labels, minlength=n_classes).argmax())
    return C.accuracy(pred, labels), C.macro_f1(pred, labels, n_classes)


def evaluate(model, tok, name, task_name, n, shots, seed):
    "Rows (raw and contextual) for one model on one task."
    base = load_task(str(DATA/task_name))
    split = eval_split(base)
    task = base.with_shots(shots, seed) if shots else base
    ex = sample_split(task.split(split), n, seed)
    y = ex.label.to_numpy()
    t0 = time.perf_counter()
    probs, mass = class_probs(model, tok, task, ex.text.tolist())
    cf, _ = class_probs(model, tok, task, CONTENT_FREE)
    secs = time.perf_counter() - t0
    maj_acc, maj_f1 = majority(task.split("train").label.to_numpy(), y, task.n_classes)
    words = [tok.decode(ids) for ids in label_token_ids(tok, task)]
    common = dict(model=name, task=task_name, split=split, n=len(y), shots=shots, seed=seed,
                  template=base.template, label_words="|".join(words),
                  label_tokens="|".join(str(len(i)) for i in label_token_ids(tok, task)),
                  demos="Task.with_shots",
                  demo_labels="|".join(str(y) for _, y in getattr(task, "demonstrations", [])),
                  majority_accuracy=maj_acc, majority_macro_f1=maj_f1, seconds=round(secs, 1))
    rows = []
    for how, p in (("none", probs), ("contextual", contextual_calibration(probs, cf))):
        pred = p.argmax(1)
        rows.append(dict(common, calibration=how, accuracy=C.accuracy(pred, y),
                         macro_f1=C.macro_f1(pred, y, task.n_classes),
                         ece=expected_calibration_error(p, y), label_mass=float(np.mean(mass))))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bm = builtin_models()
    ap.add_argument("--models", default=",".join(bm.name[bm.installed]),
                    help="built-ins to score (default: those installed here)")
    ap.add_argument("--tasks", default="sst2,sst5,mr,subj,trec,ag_news")
    ap.add_argument("--n-sst2", type=int, default=200)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--n-model", default="qwen2.5-coder-0.5b=100,qwen2.5-coder-1.5b=100",
                    help="MODEL=N,...: a smaller n for the other datasets for slow models (SST-2 keeps --n-sst2)")
    ap.add_argument("--shots", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    ap.add_argument("--out", default=str(ROOT/"nbs"/"study"/"llm_evidence.csv"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", message=".*past_key_values.*")
    out = Path(a.out)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame()
    n_model = {k: int(v) for k, v in (kv.split("=") for kv in a.n_model.split(",") if kv)}
    for name in a.models.split(","):
        todo = []
        for t in a.tasks.split(","):
            n = a.n_sst2 if t == "sst2" else n_model.get(name, a.n)
            have = (len(done) and ((done.model == name) & (done.task == t) & (done.shots == a.shots)
                                   & (done.seed == a.seed)).any())
            if not have: todo.append((t, n))
        if not todo: continue
        t0 = time.perf_counter()
        model, tok = load_model(name, dtype="float32", device="cpu")
        print(f"{name}: loaded in {time.perf_counter() - t0:.1f}s", flush=True)
        for t, n in todo:
            with torch.no_grad(): rows = evaluate(model, tok, name, t, n, a.shots, a.seed)
            done = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
            atomic_write_text(out, done.to_csv(index=False))
            for r in rows:
                print(f"{name:<20}{t:<9}{r['calibration']:<11}n={r['n']:<4} acc {r['accuracy']:.3f} "
                      f"f1 {r['macro_f1']:.3f} ece {r['ece']:.3f} mass {r['label_mass']:.3f} "
                      f"majority {r['majority_accuracy']:.3f}  {r['seconds']}s  words {r['label_words']}", flush=True)
        del model, tok
        gc.collect()


if __name__ == "__main__":
    main()
