"""Train model organisms and print, per architecture and task, train seconds and test accuracy.

Usage: python benchmarks/organisms.py [--archs llama,qwen2,...] [--tasks synthetic-sentiment,...] [--fresh]
Goals (issue: foundation): <= 120 s each on 2 quiet CPU cores; accuracy >= 0.95 on synthetic-sentiment,
>= 0.90 on synthetic-topic, >= 0.70 on ../shared/data/sst2 (llama). Organisms train on the train split left
after the held-out calibration split is carved off.
"""
import argparse, os, tempfile, time
from pathlib import Path
import torch
from attnprune_nb.organisms import ARCHS, train_organism
from attnprune_nb.classify import classify

ROOT = Path(__file__).resolve().parents[1]
SST2 = str(ROOT.parent/"shared"/"data"/"sst2")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--tasks", default="synthetic-sentiment,synthetic-topic")
    ap.add_argument("--sst2-archs", default="llama")
    ap.add_argument("--fresh", action="store_true", help="train in an empty temporary cache")
    a = ap.parse_args()
    if a.fresh: os.environ["ATTNPRUNE_CACHE"] = tempfile.mkdtemp()
    goals = {"synthetic-sentiment": 0.95, "synthetic-topic": 0.90, "sst2": 0.70}
    jobs = [(arch, t) for t in a.tasks.split(",") if t for arch in a.archs.split(",")]
    jobs += [(arch, SST2) for arch in a.sst2_archs.split(",") if arch]
    print(f"torch threads={torch.get_num_threads()}")
    print(f"{'arch':<10}{'task':<22}{'train_s':>9}{'accuracy':>10}{'goal':>6}  ok")
    for arch, task in jobs:
        t0 = time.perf_counter()
        model, tok = train_organism(arch, task, progress=False)
        secs = getattr(model, "train_seconds", time.perf_counter() - t0)
        preds, _ = classify(model, tok, task, split="test")
        name = Path(task).name
        ok = preds.accuracy >= goals[name] and secs <= 120
        verdict = "yes" if ok else "NO"
        print(f"{arch:<10}{name:<22}{secs:>9.1f}{preds.accuracy:>10.3f}{goals[name]:>6.2f}  {verdict}",
              flush=True)

if __name__ == "__main__":
    main()
