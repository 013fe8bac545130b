"""The sweep's dimensions: demonstration sets and random draws as cell identities, the k check before any work, the
degenerate-cell flags of every cell, ids of the committed study unchanged, and the study_v2 config as planned."""
import json
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SHARED
from attnprune_nb.core import AttnPruneError
from attnprune_nb.prune import layers_to_drop
from attnprune_nb.organisms import random_model
from attnprune_nb.experiment import (validate_config, load_config, expand_cells, group_cells, prompt_task, sweep_task,
                                     random_layer_seed, run_sweep, check_sweep)

MINI = dict(models=[{"arch": "gpt2"}], tasks=["synthetic-topic"], n=16, k=[0, 1], strategies=["last"], methods=[],
            n_calib=16, importance_n=16, efficiency=False, shots="per_class")


def test_two_demonstration_sets_give_two_identities_and_prompts():
    s = validate_config(MINI | {"demo_seeds": [0, 1]})
    cells = expand_cells(s)
    assert len(cells) == 4 and len({c["id"] for c in cells}) == 4
    by = {(c["demo_seed"], c["strategy"], c["k"]): c["id"] for c in cells}
    assert by[0, "none", 0] != by[1, "none", 0] and by[0, "last", 1] != by[1, "last", 1]
    assert [len(g) for g in group_cells(cells)] == [2, 2]  # groups are (model, task, demonstration set, seed)
    base = sweep_task(s, "synthetic-topic")
    assert prompt_task(s, base, 0).demonstrations != prompt_task(s, base, 1).demonstrations


def test_random_draws_are_cells_with_their_own_seed():
    s = validate_config(MINI | {"strategies": ["random"], "k": [0, 2], "seeds": [0, 1], "random_draws": 3,
                                "random_seed": 11})
    cells = expand_cells(s)
    assert len(cells) == 2 * (1 + 3) and len({c["id"] for c in cells}) == len(cells)
    model, _ = random_model("llama", "synthetic-topic", n_layers=12)
    drops = {(c["seed"], c["draw"]): layers_to_drop(model, 2, "random", seed=random_layer_seed(s, c))
             for c in cells if c["strategy"] == "random"}
    assert all(drops[0, d] == drops[1, d] for d in range(3))  # a draw is one layer set per (model, k): not the seed's
    assert len({tuple(drops[0, d]) for d in range(3)}) == 3  # three independent draws (12 choose 2 = 66 sets)
    assert drops[0, 0] != layers_to_drop(model, 2, "random", seed=0)  # not the sample seed's draw


def test_k_too_large_for_a_model_fails_before_any_work(tmp_path):
    with pytest.raises(AttnPruneError, match="k=100 would drop every attention layer of the 6-layer model "
                                             "organism-gpt2: use k < 6"):
        run_sweep(MINI | {"k": [0, 100]}, out=tmp_path/"out", progress=False)
    assert not (tmp_path/"out").exists()
    with pytest.raises(AttnPruneError, match="k=0.95"):
        check_sweep(validate_config(MINI | {"k": [0.95]}))  # a fraction that rounds to all 6 layers
    check_sweep(validate_config(MINI | {"k": [0, 5, 0.5]}))


@pytest.mark.slow
def test_sweep_records_demo_sets_draws_and_flags(tmp_path):
    cfg = MINI | {"strategies": ["random"], "demo_seeds": [0, 1], "random_draws": 2, "random_seed": 0,
                  "equivalence_margin": 0.03}
    df = run_sweep(cfg, out=tmp_path, progress=False)
    cells = [json.loads(f.read_text()) for f in (tmp_path/"cells").glob("*.json")]
    assert len(cells) == 2 * (1 + 2)
    assert {(c["cell"]["demo_seed"], c["cell"]["draw"], c["cell"]["strategy"]) for c in cells} == {
        (d, i, "random") for d in (0, 1) for i in (0, 1)} | {(0, 0, "none"), (1, 0, "none")}
    for c in cells:
        s = c["summary"]
        pred = np.array(c["examples"]["log_probs"]).argmax(1)
        assert s["majority_share"] == np.bincount(pred).max() / len(pred)
        assert isinstance(s["temperature_at_bound"], bool)
        assert (s["temperature_at_bound"] == (min(abs(np.log(s["temperature"] / b)) for b in (0.05, 20)) < 1e-3))
        assert (s["demo_seed"], s["draw"]) == (c["cell"]["demo_seed"], c["cell"]["draw"])
    assert {"demo_seed", "draw"} <= set(df.columns) and list(df.columns).index("demo_seed") == 4
    flags = df[df.metric.isin(["majority_share", "temperature_at_bound"])]
    assert len(flags) == 2 * len(cells) and set(flags.split) == {"test"}
    assert json.loads((tmp_path/"config.json").read_text())["equivalence_margin"] == 0.03
    saved = pd.read_csv(tmp_path/"results.csv", keep_default_na=False)  # read back as a fresh reader would
    assert sorted(set(zip(saved.demo_seed, saved.draw))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    pd.testing.assert_frame_equal(run_sweep(cfg, out=tmp_path, progress=False), df)  # resumes: nothing to do


def test_committed_llm_study_keeps_its_cell_ids():
    "The new dimensions leave ids of earlier configs alone: a resumed earlier study recomputes nothing."
    if not (SHARED/"sst2").exists(): pytest.skip("shared data not found")
    ids = {c["id"] for c in expand_cells(load_config(ROOT/"configs"/"llms.yaml"))}
    assert ids == {f.stem for f in (ROOT/"nbs"/"study"/"cells").glob("*.json")}


@pytest.mark.slow
def test_depth_reuse_gives_the_same_results(tmp_path, monkeypatch):
    "An organism sweep with and without depth reuse: same cells, same table within 1e-4, and reuse happened."
    import attnprune_nb.experiment as ex
    stores = []
    class Spy(ex.DepthReuse):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            stores.append(self)
    monkeypatch.setattr(ex, "DepthReuse", Spy)
    cfg = dict(models=[{"arch": "llama"}, {"arch": "gpt2"}], tasks=["synthetic-sentiment"], n=24, k=[0, 1, 2],
               strategies=["similarity", "last", "random"], random_draws=2, random_seed=3, methods=[], n_calib=24,
               importance_n=16, contextual=True, efficiency=False, shots="per_class", demo_seeds=[0, 1])
    on = run_sweep(cfg, out=tmp_path/"on", progress=False)
    assert len(stores) == 4 and all(s.counts["reused"] > 0 and s.counts["recorded"] > 0 for s in stores), stores
    off = run_sweep(cfg | {"depth_reuse": False}, out=tmp_path/"off", progress=False)
    assert len(stores) == 4  # no store without depth reuse
    ids = [sorted(p.name for p in (tmp_path/x/"cells").glob("*.json")) for x in ("on", "off")]
    assert ids[0] == ids[1] and len(ids[0]) == 2 * 2 * (1 + 2 + 2 + 4)
    pd.testing.assert_frame_equal(on.drop(columns="value"), off.drop(columns="value"))
    assert np.abs(on.value.to_numpy() - off.value.to_numpy()).max() <= 1e-4


def test_only_runs_the_chosen_configurations_with_the_same_results(tmp_path):
    "A second phase (`only`) runs its configurations and the unpruned cells, and scores them as the full sweep did."
    cfg = MINI | {"strategies": ["last", "random"], "k": [0, 1, 2], "random_draws": 2, "random_seed": 0}
    run_sweep(cfg, out=tmp_path/"all", progress=False)
    only = [dict(model="organism-gpt2", task="synthetic-topic", strategy="random", k=2, draw=1)]
    run_sweep(cfg | {"only": only}, out=tmp_path/"only", progress=False)
    everything = {f.name: json.loads(f.read_text()) for f in (tmp_path/"all"/"cells").glob("*.json")}
    chosen = {f.name: json.loads(f.read_text()) for f in (tmp_path/"only"/"cells").glob("*.json")}
    assert len(everything) == 1 + 2 + 2 * 2 and set(chosen) < set(everything)
    assert sorted((c["cell"]["strategy"], c["cell"]["k"], c["cell"]["draw"]) for c in chosen.values()) == [
        ("none", 0, 0), ("random", 2, 1)]
    for name, c in chosen.items():
        assert c["summary"]["dropped"] == everything[name]["summary"]["dropped"]
        np.testing.assert_allclose(c["examples"]["log_probs"], everything[name]["examples"]["log_probs"], atol=1e-5)
