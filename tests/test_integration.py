"""The sweep end to end: kill a run with SIGKILL mid-sweep and resume it, shards merged by `attnprune report`, a changed
setting recomputes instead of reusing stale cells, batch size does not change results, bad configs (a k too large for
the model included) fail before work."""
import json, os, shutil, signal, subprocess, time
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
N_CELLS = 7
TIMING = {"prefill_seconds", "decode_tokens_per_second"}


def table(folder):
    df = pd.read_csv(Path(folder)/"results.csv", keep_default_na=False)
    return df[~df.metric.isin(TIMING)].reset_index(drop=True)


def cell_ids(folder): return {f.stem for f in (Path(folder)/"cells").glob("*.json")}


def write_config(folder, text, name="sweep.yaml"):
    (folder/name).write_text(text)
    return folder/name


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    attnprune("run", "--config", write_config(d, CONFIG), "--out", d/"reference")  # also trains the organism once
    return d


def test_uninterrupted_run_writes_everything(config):
    ref = config/"reference"
    assert len(cell_ids(ref)) == N_CELLS
    assert (ref/"summary.md").exists() and len(list((ref/"figures").glob("*.png"))) >= 4
    df = pd.read_csv(ref/"results.csv", keep_default_na=False)
    assert list(df.columns) == ["model", "task", "split", "seed", "demo_seed", "draw", "strategy", "k", "dropped", "method",
                                "metric", "value"]
    assert set(df.demo_seed) == {0} and set(df.draw) == {0}
    flags = df[df.metric.isin(["majority_share", "temperature_at_bound"])]
    assert len(flags) == 2 * N_CELLS and flags.value.between(0, 1).all()
    assert set(df.k) == {0, 1, 2, 3} and set(df.strategy) == {"none", "last", "similarity"}
    fit = df[df.metric == "temperature"]
    assert len(fit) == N_CELLS and set(fit.split) <= {"calibration", "validation"} and "train" not in set(fit.split)
    imp = pd.read_csv(ref/"importance.csv")
    assert set(imp.seed) == {0} and (imp.sample_split == "train").all() and len(imp.sample_ids.iloc[0].split()) == 16


def test_sigkill_and_resume_gives_the_same_table(config):
    out = config/"killed"
    p = subprocess.Popen(["attnprune", "run", "--config", str(config/"sweep.yaml"), "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(cell_ids(out)) < 2 and p.poll() is None: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = len(cell_ids(out))
    assert 2 <= done < N_CELLS, f"the kill should land mid-sweep ({done} cells finished)"
    for f in (out/"cells").glob("*.json"): json.loads(f.read_text())  # no torn cell file: each was written atomically
    attnprune("run", "--config", config/"sweep.yaml", "--out", out)
    assert len(cell_ids(out)) == N_CELLS
    pd.testing.assert_frame_equal(table(out), table(config/"reference"))


def test_shards_merged_by_report_equal_the_unsharded_run(config):
    out = config/"sharded"
    for i in range(3): attnprune("run", "--config", config/"sweep.yaml", "--out", out, "--shard", f"{i}/3")
    assert cell_ids(out) == cell_ids(config/"reference")
    attnprune("report", "--results", out)
    pd.testing.assert_frame_equal(table(out), table(config/"reference"))


def test_changed_setting_recomputes_instead_of_reusing_stale_cells(config):
    out = config/"changed"
    shutil.copytree(config/"reference", out)
    attnprune("run", "--config", write_config(config, CONFIG.replace("n_calib: 32", "n_calib: 24"), "changed.yaml"), "--out", out)
    assert len(cell_ids(out)) == N_CELLS and not cell_ids(out) & cell_ids(config/"reference")
    assert {f.stem for f in (out/"stale").glob("*.json")} == cell_ids(config/"reference")
    fit_n = table(out).query("metric == 'fit_n'").value
    assert len(fit_n) == N_CELLS and (fit_n == 24).all()


def test_batch_size_and_token_budget_do_not_change_results(config):
    out = config/"batch1"
    attnprune("run", "--config", write_config(config, CONFIG + "batch_size: 1\ntoken_budget: 256\n", "batch1.yaml"), "--out", out)
    assert cell_ids(out) == cell_ids(config/"reference")  # how work is batched is not part of a cell id
    a, b = table(out), table(config/"reference")
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    assert (a.value - b.value).abs().max() <= 1e-5  # LOO tau included: its resolution ties noise-level effects


@pytest.mark.parametrize("change,message", [
    (("strategies: [last, similarity]", "strategies: [last, middle]"), "'strategies'"),
    (("n: 24", "n: 24\nsplit: dev"), "no split 'dev'"),
    (("  - {arch: gpt2}", "  - no-such-model"), "unknown model 'no-such-model'"),
    (("  - {arch: gpt2}", "  - ./no/such/folder"), "does not exist"),
    (("k: [0, 1, 2, 3]", "k: [0, 1, 100]"), "k=100 would drop every attention layer of the 6-layer model"),
])
def test_invalid_config_fails_before_any_work(config, tmp_path, change, message):
    cfg = write_config(tmp_path, CONFIG.replace(*change), "bad.yaml")
    r = attnprune("run", "--config", cfg, "--out", tmp_path/"out", check=False)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path/"out").exists()
