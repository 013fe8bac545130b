"""The sweep end to end: kill a run with SIGKILL mid-sweep, resume it, and compare with an uninterrupted run; shards merge."""
import os, signal, subprocess, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import attnprune, ROOT

CONFIG = """models:
  - {arch: gpt2}
tasks: [synthetic-topic]
n: 24
k: [0, 1, 2, 3]
strategies: [last, similarity]
methods: [input_x_gradient, random]
n_calib: 32
importance_n: 16
"""
TIMING = {"prefill_seconds", "decode_tokens_per_second"}


def table(folder):
    df = pd.read_csv(Path(folder)/"results.csv", keep_default_na=False)
    return df[~df.metric.isin(TIMING)].reset_index(drop=True)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep"); (d/"sweep.yaml").write_text(CONFIG)
    attnprune("run", "--config", d/"sweep.yaml", "--out", d/"reference")  # also trains the organism once
    return d


def test_uninterrupted_run_writes_everything(config):
    ref = config/"reference"
    assert len(list((ref/"cells").glob("*.json"))) == 7
    assert (ref/"summary.md").exists() and len(list((ref/"figures").glob("*.png"))) >= 4
    df = pd.read_csv(ref/"results.csv", keep_default_na=False)
    assert list(df.columns) == ["model", "task", "split", "seed", "strategy", "k", "dropped", "method", "metric", "value"]
    assert set(df.k) == {0, 1, 2, 3} and set(df.strategy) == {"none", "last", "similarity"}


def test_sigkill_and_resume_gives_the_same_table(config):
    out = config/"killed"
    p = subprocess.Popen(["attnprune", "run", "--config", str(config/"sweep.yaml"), "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out/"cells").glob("*.json"))) < 2 and p.poll() is None: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    done = len(list((out/"cells").glob("*.json")))
    assert 2 <= done < 7, f"the kill should land mid-sweep ({done} cells finished)"
    import json
    for f in (out/"cells").glob("*.json"): json.loads(f.read_text())  # no torn cell file: each was written atomically
    r = attnprune("run", "--config", config/"sweep.yaml", "--out", out)
    assert len(list((out/"cells").glob("*.json"))) == 7
    pd.testing.assert_frame_equal(table(out), table(config/"reference"))


def test_shards_merge_in_report(config):
    out = config/"sharded"
    for i in range(3): attnprune("run", "--config", config/"sweep.yaml", "--out", out, "--shard", f"{i}/3")
    attnprune("report", "--results", out)
    pd.testing.assert_frame_equal(table(out), table(config/"reference"))


def test_invalid_config_fails_before_work(config, tmp_path):
    (tmp_path/"bad.yaml").write_text(CONFIG.replace("strategies: [last, similarity]", "strategies: [last, middle]"))
    r = attnprune("run", "--config", tmp_path/"bad.yaml", "--out", tmp_path/"out", check=False)
    assert r.returncode == 2 and "'strategies'" in r.stderr and not (tmp_path/"out").exists()
