"""`compare` on model organisms: a model against itself, a model without its most important attention layer,
LLM-Drop checkpoints, the JSON read back in a fresh process, and bad input refused before any model runs."""
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from attnprune_nb import compare as cmp
from attnprune_nb.compare import (compare, run_compare, load_compared, write_comparison, load_comparison,
                                  comparison_json, exit_status, ASPECTS)
from attnprune_nb.models import load_model
from attnprune_nb.core import AttnPruneError
from attnprune_nb.data import Task, load_task
from attnprune_nb.experiment import score_prompts, evaluate_cell, cell_efficiency
from attnprune_nb.organisms import train_organism, organism_path
from attnprune_nb.prune import attention_importance, attention_dropped, dropped_layers, llm_drop_layers

FAST = dict(n_resamples=2000, n_calib=64)


@pytest.fixture(scope="module")
def sent():
    return load_task("synthetic-sentiment")


@pytest.fixture(scope="module")
def organism(sent):
    model, tok = train_organism("llama", sent, progress=False)
    return model, tok, organism_path("llama", sent)


def llm_drop_folder(src, dest, drop_attn, drop_mlp=None, strip=True):
    "A copy of model folder `src` as LLM-Drop saves one: drop lists, auto_map to code that must not run."
    dest = Path(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("manifest.json", "organism.json"))
    cfg = json.loads((dest/"config.json").read_text())
    n = cfg["num_hidden_layers"]
    cfg.update(drop_attn_list=drop_attn, drop_mlp_list=[False] * n if drop_mlp is None else drop_mlp,
               auto_map={"AutoConfig": "configuration_dropped_llama.LlamaConfig",
                         "AutoModelForCausalLM": "modeling_dropped_llama.LlamaForCausalLM"})
    (dest/"config.json").write_text(json.dumps(cfg))
    for f in ("configuration_dropped_llama.py", "modeling_dropped_llama.py"):
        (dest/f).write_text(f"open({str(dest/'RAN')!r}, 'w').write('x')\nraise RuntimeError('custom code ran')\n")
    if strip:
        ids = llm_drop_layers(cfg, n)
        w = load_file(dest/"model.safetensors")
        keep = {k: v for k, v in w.items() if not any(k.startswith(f"model.layers.{l}.self_attn.") for l in ids)}
        assert len(keep) < len(w) or not ids
        save_file(keep, dest/"model.safetensors", metadata={"format": "pt"})
    return dest


def test_a_model_against_itself_holds_every_aspect_with_zero_changes(organism, sent):
    model, tok, _ = organism
    c = compare(model, tok, sent, drop=[], n=48, shots=2, demo_sets=2, faithfulness_n=8, **FAST)
    assert c.exit_code == 0
    assert {a: d["verdict"] for a, d in c.aspects.items()} == {
        "accuracy": "held", "calibration": "unchanged", "faithfulness": "unchanged"}
    assert {r["aspect"] for r in c.rows} == set(ASPECTS) and len(c.rows) == 1 + 6 + 4
    for r in c.rows:
        assert (r["change"], r["low"], r["high"], r["p_value"]) == (0.0, 0.0, 0.0, 1.0), r
        assert r["set_changes"] == [0.0, 0.0] and r["floor"] is not None
    assert c.efficiency["ratio"]["params"] == 1.0 and c.efficiency["ratio"]["kv_cache_bytes"] == 1.0


def test_a_second_copy_of_the_model_changes_nothing(organism, sent):
    model, tok, path = organism
    other, otok = load_compared(path)
    assert other is not model
    c = compare(model, tok, sent, pruned=other, pruned_tok=otok, n=32, shots=0, methods="occlusion",
                faithfulness_n=8, efficiency=False, **FAST)
    assert c.exit_code == 0 and all(r["change"] == 0 == r["low"] == r["high"] for r in c.rows)


def test_dropping_the_most_important_attention_layer_fails_on_accuracy(organism, sent):
    model, tok, _ = organism
    imp = attention_importance(model, tok, sent, n=64)
    top = int(imp.importance.idxmax())
    c = compare(model, tok, sent, drop=[top], n=64, shots=0, faithfulness_n=8, **FAST)
    acc = c.aspects["accuracy"]
    assert acc["verdict"] == "worse" and acc["row"]["high"] < -c.settings["margin"], acc
    assert c.exit_code == 1 and c.dropped == [top]
    assert c.summary.startswith("accuracy worse (")
    assert dropped_layers(model) == []  # restored after the comparison
    # counted aspects decide: with accuracy left out the status follows calibration and faithfulness only
    others = {a: d["verdict"] for a, d in c.aspects.items() if a != "accuracy"}
    alone = compare(model, tok, sent, drop=[top], n=64, shots=0, faithfulness_n=8,
                    fail_on="calibration,faithfulness", **FAST)
    assert alone.exit_code == (1 if "worse" in others.values() else 0)


@pytest.mark.parametrize("form", ["indices", "booleans"])
def test_llm_drop_folder_loads_and_drops_the_same_layers_as_drop(organism, sent, tmp_path, form):
    model, tok, path = organism
    lst = [5, 1] if form == "indices" else [False, True, False, False, False, True]
    folder = llm_drop_folder(path, tmp_path/"llm-drop", lst)
    pm, ptok = load_model(folder)  # plain load_model: what every command does with a model folder
    assert not (folder/"RAN").exists()  # the folder's own modelling code never ran
    assert type(pm).__module__.startswith("transformers.models.llama")
    assert dropped_layers(pm) == [1, 5]
    texts = sent.split("test").text.tolist()[:48]
    with attention_dropped(model, [1, 5]): ref = score_prompts(model, tok, sent, texts)[2]
    assert np.array_equal(score_prompts(pm, ptok, sent, texts)[2], ref)
    via_folder, code = run_compare(str(path), "synthetic-sentiment", pruned=str(folder), n=48, shots=0,
                                   methods="occlusion", faithfulness_n=8)
    via_drop, code2 = run_compare(str(path), "synthetic-sentiment", drop="1,5", n=48, shots=0,
                                  methods="occlusion", faithfulness_n=8)
    assert via_folder.dropped == via_drop.dropped == [1, 5]
    assert via_folder.rows == via_drop.rows and code == code2



def test_every_command_reads_an_llm_drop_folder_as_pruned(organism, sent, tmp_path):
    "`attnprune evaluate` (console script, fresh process) scores the folder's model with its attention dropped."
    model, tok, path = organism
    folder = llm_drop_folder(path, tmp_path/"llm-drop", [5, 1])
    r = subprocess.run(["attnprune", "evaluate", "--model", str(folder), "--task", "synthetic-sentiment", "--n", "48",
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "MISSING" not in r.stderr and not (folder/"RAN").exists()
    got = json.loads(r.stdout)
    assert got["dropped"] == [1, 5] and got["strategy"] == "none"
    with attention_dropped(model, [1, 5]): ref = evaluate_cell(model, tok, sent, "test", 48, 0, [])
    assert got["accuracy"] == pytest.approx(ref.accuracy, abs=1e-9)
    assert got["calibration"] == pytest.approx(ref.calibration, abs=1e-6)
    assert got["efficiency"]["kv_cache_bytes"] * 6 == cell_efficiency(model)["kv_cache_bytes"] * 4


def test_json_round_trips_in_a_fresh_process(organism, sent, tmp_path):
    model, tok, _ = organism
    c = compare(model, tok, sent, drop=[4], n=32, shots=2, demo_sets=2, faithfulness_n=8,
                names=("organism", "organism without attention 4"), **FAST)
    paths = write_comparison(c, tmp_path/"out")
    assert {p.name for p in (tmp_path/"out").iterdir()} == {"compare.md", "compare.png", "compare.json"}
    strict = json.loads(paths["json"].read_text(), parse_constant=lambda x: pytest.fail(f"non-JSON {x}"))
    prog = ("import sys; from attnprune_nb.compare import load_comparison, comparison_json; "
            "print(comparison_json(load_comparison(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", prog, str(tmp_path/"out")], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == strict == json.loads(comparison_json(c))
    back = load_comparison(paths["json"])
    assert back.to_dict() == c.to_dict() and back.exit_code == c.exit_code
    assert c.summary in paths["card"].read_text()


def test_exit_status_precedence():
    def asp(**v): return {a: dict(verdict=x, counted=True) for a, x in v.items()}
    assert exit_status(asp(accuracy="held", calibration="unchanged", faithfulness="better")) == 0
    assert exit_status(asp(accuracy="inconclusive", calibration="unchanged")) == 3
    assert exit_status(asp(accuracy="inconclusive", calibration="worse")) == 1
    assert exit_status({"accuracy": dict(verdict="worse", counted=False),
                        "calibration": dict(verdict="unchanged", counted=True)}) == 0


@pytest.fixture
def no_scoring(monkeypatch):
    "Fail the test if any model is scored: bad input must be refused before."
    def boom(*a, **k): raise AssertionError("a model ran before the bad input was refused")
    monkeypatch.setattr(cmp, "evaluate_cell", boom)


@pytest.mark.parametrize("kw,message", [
    (dict(drop=[1, 1]), "Duplicate layer ids"),
    (dict(drop=[6]), "out of range"),
    (dict(drop=[1], strategy="last", k=1), "exactly one pruned model"),
    (dict(strategy="last", k=6), "would drop every attention layer"),
    (dict(strategy="similarity", k=6), "would drop every attention layer"),
    (dict(drop=[1], margin=3), "fraction in (0, 1)"),
    (dict(drop=[1], methods="", fail_on=ASPECTS), "leave faithfulness out"),
    (dict(drop=[1], shots=5000), "use fewer shots"),
])
def test_bad_options_are_refused_before_any_model_runs(organism, sent, no_scoring, kw, message):
    model, tok, _ = organism
    with pytest.raises(AttnPruneError) as e: compare(model, tok, sent, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_different_tokenizers_are_refused_before_any_model_runs(organism, sent, no_scoring):
    model, tok, path = organism
    from transformers import AutoTokenizer
    topic_model, topic_tok = train_organism("gpt2", "synthetic-topic", progress=False)
    with pytest.raises(AttnPruneError, match="pruned model's tokenizer"):
        compare(model, tok, sent, pruned=topic_model, pruned_tok=topic_tok)
    ovi = AutoTokenizer.from_pretrained(path)
    ovi.add_tokens(["ovi"])  # split out of any text first: "movie" -> <unk> ovi <unk>
    with pytest.raises(AttnPruneError, match="tokenizers differ: prompt"):
        compare(model, tok, sent, pruned=model, pruned_tok=ovi)
    film = Task("film", ["bad", "good"], ["bad", "movie"], sent.template, sent.splits)
    with pytest.raises(AttnPruneError, match="'movie' is 1 token\\(s\\) for the full model but 3"):
        compare(model, tok, film, pruned=model, pruned_tok=ovi)


@pytest.mark.parametrize("edit,message", [
    ({"drop_attn_list": [True, False]}, "2 booleans for a 6-layer model"),
    ({"drop_attn_list": [1, 1]}, "Duplicate layer ids"),
    ({"drop_attn_list": [9]}, "out of range"),
    ({"drop_mlp_list": [3]}, "drops attention only"),
    ({"drop_attn_list": [5]}, "no attention weights for kept layer(s) [1]"),
])
def test_bad_llm_drop_folders_are_one_line_errors(organism, tmp_path, edit, message):
    _, _, path = organism
    folder = llm_drop_folder(path, tmp_path/"bad", [1])
    cfg = json.loads((folder/"config.json").read_text())
    (folder/"config.json").write_text(json.dumps(cfg | edit))
    with pytest.raises(AttnPruneError) as e: run_compare(str(path), "synthetic-sentiment", pruned=str(folder))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (folder/"RAN").exists()
