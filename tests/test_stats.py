"Checks of attnprune_nb.stats against independent references (classify.macro_f1, scipy) and its speed."
import time
import numpy as np
import pytest
from scipy.stats import false_discovery_control
from attnprune_nb.classify import macro_f1
from attnprune_nb.calibration import paired_bootstrap, CALIBRATION_METRICS
from attnprune_nb.stats import (resampler, pooled_bootstrap, benjamini_hochberg, noise_floor, equivalence_verdict,
                                fluctuates, degenerate_flags, two_level_draws)


def _probs(rng, n, c, scale=2.0):
    z = rng.normal(size=(n, c)) * scale
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


@pytest.mark.parametrize("c", [2, 3, 6])
def test_macro_f1_rows_match_classify(c):
    rng = np.random.default_rng(c)
    p, y = _probs(rng, 60, c), rng.integers(0, c, 60)
    idx = rng.integers(0, 60, (40, 60))
    got = resampler("macro_f1", p, y)(idx)
    want = [macro_f1(p[i].argmax(1), y[i], c) for i in idx]
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "ece", "brier", "nll"])
def test_fast_paths_match_calibration(name):
    rng = np.random.default_rng(1)
    p, y = _probs(rng, 120, 4, 3.0), rng.integers(0, 4, 120)
    p[:5] = np.eye(4)[y[:5]]  # confidence exactly 1.0 falls in the last ECE bin
    idx = rng.integers(0, 120, (30, 120))
    f = CALIBRATION_METRICS.get(name) or (lambda q, t: float((q.argmax(1) == t).mean()))
    np.testing.assert_allclose(resampler(name, p, y)(idx), [f(p[i], y[i]) for i in idx], atol=1e-12)


def test_one_set_is_paired_bootstrap_for_a_looped_metric():
    rng = np.random.default_rng(2)
    a, b, y = _probs(rng, 50, 3), _probs(rng, 50, 3, 4.0), rng.integers(0, 3, 50)
    old = paired_bootstrap("mce", a, b, y, n_resamples=100, seed=4)
    new = pooled_bootstrap("mce", [a], [b], [y], n_resamples=100, seed=4)
    assert np.allclose([new["change"], new["low"], new["high"]], [old["diff"], old["low"], old["high"]])


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(3)
    a = [_probs(rng, n, 2) for n in (30, 40)]
    b = [_probs(rng, n, 2) for n in (30, 40)]
    y = [rng.integers(0, 2, n) for n in (30, 40)]
    big = pooled_bootstrap("ece", a, b, y, n_resamples=300, seed=5)
    small = pooled_bootstrap("ece", a, b, y, n_resamples=300, seed=5, chunk_elements=100)
    # different block sizes draw different streams; the sets' and examples' laws are the same
    assert big["change"] == small["change"] and abs(big["sd"] / small["sd"] - 1) < 0.15
    sizes = [len(i) for s, idx in two_level_draws([30, 40], 300, 5, chunk_elements=100) for i in idx]
    assert sum(sizes) == 600


def test_coverage_of_the_pooled_interval():
    "Across simulated studies with no demonstration effect, the 95% interval covers the true change ~95% or more."
    rng = np.random.default_rng(6)
    hits = 0
    for rep in range(60):
        right_a = [rng.random(200) < 0.7 for _ in range(3)]
        right_b = [rng.random(200) < 0.65 for _ in range(3)]
        to_p = lambda r: np.stack([r * 0.8 + 0.1, 0.9 - r * 0.8], 1)
        r = pooled_bootstrap("accuracy", [to_p(x) for x in right_a], [to_p(x) for x in right_b],
                             [np.zeros(200, int)] * 3, n_resamples=1000, seed=rep)
        hits += r["low"] <= -0.05 <= r["high"]
    assert hits >= 54  # within-set noise only: the two-level interval is conservative (about 1.29x wide)


def test_bh_matches_scipy_on_many_random_families():
    rng = np.random.default_rng(7)
    for _ in range(200):
        m = int(rng.integers(1, 60))
        p = np.round(rng.random(m) ** 2, int(rng.integers(1, 4)))  # rounding makes ties
        np.testing.assert_allclose(benjamini_hochberg(p)[0], false_discovery_control(p), atol=1e-12)


def test_speed_of_ten_thousand_resamples():
    rng = np.random.default_rng(8)
    a = [_probs(rng, 300, 3) for _ in range(3)]
    b = [_probs(rng, 300, 3) for _ in range(3)]
    y = [rng.integers(0, 3, 300) for _ in range(3)]
    t0 = time.perf_counter()
    for m in ("accuracy", "ece", "brier", "nll"): pooled_bootstrap(m, a, b, y)
    assert time.perf_counter() - t0 < 10  # about 0.35 s on one core


def test_noise_floor_and_verdict_edges():
    nf = noise_floor("mean", [np.full(20, 0.5), np.full(20, 0.52)], n_resamples=100)
    assert np.isclose(nf["floor"], 0.02) and nf["within_sd"] < 1e-12
    assert not fluctuates(0.02, 0.05, nf["floor"]) and fluctuates(0.0201, 0.05, nf["floor"])
    assert equivalence_verdict(-0.03, 0.03, 0.03) == "inconclusive"
    assert equivalence_verdict(-0.0299, 0.0299, 0.03) == "held"


def test_degenerate_flags_on_a_committed_study_record():
    import json, glob, os
    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "nbs", "study", "cells", "*.json")))
    if not files: pytest.skip("no committed study")
    flags = [degenerate_flags(json.load(open(f))) for f in files]
    assert sum(f["one_class"] for f in flags) == 59  # issue 22's count on the committed study
    assert sum(f["temperature_at_bound"] for f in flags) == 54
    assert sum(f["one_class"] and f["temperature_at_bound"] for f in flags) == 37


def test_report_tables_load_back_in_a_fresh_process(tmp_path):
    "changes.csv, floors.csv and verdicts.csv written by write_report read back equal in another process."
    import json, subprocess, sys
    import pandas as pd
    from attnprune_nb.core import atomic_write_text
    from attnprune_nb.report import synthetic_cells, write_report
    for c in synthetic_cells(strategies=("last", "random"), ks=(1, 2), demo_seeds=(0, 1, 2), draws=(0, 1),
                             collapse_k=2):
        atomic_write_text(tmp_path/"cells"/f"{c['cell']['id']}.json", json.dumps(c, default=float))
    atomic_write_text(tmp_path/"config.json", json.dumps(dict(equivalence_margin=0.1)))
    paths = write_report(tmp_path, n_resamples=200)
    code = ("import sys, json; from attnprune_nb.report import read_study; import pandas as pd\n"
            "res, ch, _ = read_study(sys.argv[1])\n"
            "v = pd.read_csv(sys.argv[1] + '/verdicts.csv')\n"
            "print(json.dumps(dict(rows=len(ch), families=ch.family.value_counts().to_dict(),\n"
            "    verdicts=ch.verdict.value_counts().to_dict(), blank=int((ch.family == '').sum()),\n"
            "    excluded=int((v.accuracy == 'excluded').sum()),\n"
            "    floors=int(pd.read_csv(sys.argv[1] + '/floors.csv').floor.notna().sum()))))")
    out = json.loads(subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                                    check=True).stdout)
    ch = pd.read_csv(paths["changes"]).fillna({"family": "", "verdict": ""})
    assert out["rows"] == len(ch)
    assert out["families"] == ch.family.value_counts().to_dict()
    assert out["verdicts"] == ch.verdict.value_counts().to_dict()
    assert out["excluded"] == 3  # last k=2, random k=2 draws 0 and 1: one class
    assert out["floors"] > 0 and out["blank"] == (ch.family == "").sum() > 0
    assert "interval inside ±0.1" in open(paths["summary"]).read()
