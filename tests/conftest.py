import os, sys, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub in tests


def attnprune(*args, timeout=900, check=True, cwd=None):
    "Run the `attnprune` console script; returns the CompletedProcess."
    r = subprocess.run(["attnprune", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
    if check and r.returncode != 0:
        raise AssertionError(f"attnprune {' '.join(map(str, args))} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="session")
def sst2_path():
    if not (SHARED/"sst2").exists(): pytest.skip(f"shared data not found at {SHARED}")
    return SHARED/"sst2"
