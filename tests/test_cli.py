"""The `attnprune` command line: the contract of ../shared/DESIGN.md, clear errors, and the organism round trip."""
import json
import pytest
from conftest import attnprune, ROOT

CAL = {"ece", "ece_equal_mass", "smooth_ece", "mce", "brier", "nll", "aurc"}
FAITH = {"comprehensiveness", "sufficiency", "comprehensiveness_aopc", "sufficiency_aopc", "decision_flip_fraction"}


def test_help_lists_every_subcommand():
    out = attnprune("--help").stdout
    for cmd in ("run", "organism", "importance", "evaluate", "report", "docs"):
        assert cmd in out


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--model", "./missing-model", "--task", "synthetic-sentiment"], "Model folder not found"),
    (["importance", "--model", "./missing-model", "--task", "synthetic-sentimnt"], "Unknown task 'synthetic-sentimnt'"),
    (["evaluate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--task", "synthetic-sentiment"], "attnprune organism"),
    (["organism", "--arch", "llama", "--task", "stanfordnlp/sst2", "--out", "/tmp/x"], "--task ../shared/data/sst2"),
    (["report", "--results", "/tmp/definitely-not-results"], "No finished cells"),
])
def test_bad_input_gives_one_clear_line(args, message):
    r = attnprune(*args, check=False)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_malformed_jsonl_names_file_and_line(tmp_path):
    (tmp_path/"train.jsonl").write_text('{"text": "fine", "label": 0}\n{"text": "oops" "label": 1}\n')
    r = attnprune("organism", "--arch", "gpt2", "--task", tmp_path, "--out", tmp_path/"m", check=False)
    assert r.returncode == 2 and "train.jsonl, line 2" in r.stderr, r.stderr


def test_label_out_of_range(tmp_path):
    (tmp_path/"train.csv").write_text("text,label\ngood,0\nbad,7\n")
    r = attnprune("organism", "--arch", "gpt2", "--task", tmp_path, "--labels", "neg,pos", "--out", tmp_path/"m", check=False)
    assert r.returncode == 2 and "out of range" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def topic_organism(tmp_path_factory):
    out = tmp_path_factory.mktemp("organism")/"gpt2-topic"
    info = json.loads(attnprune("organism", "--arch", "gpt2", "--task", "synthetic-topic", "--out", out).stdout.strip().splitlines()[-1])
    assert info["test_accuracy"] >= 0.9 and 4 <= info["layers"] <= 8
    return out


def test_organism_folder_loads_with_auto_classes(topic_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(topic_organism); tok = AutoTokenizer.from_pretrained(topic_organism)
    assert model.config.model_type == "gpt2" and tok("a goal for the team").input_ids


def test_evaluate_json_contract(topic_organism):
    full = json.loads(attnprune("evaluate", "--model", topic_organism, "--task", "synthetic-topic", "--n", 40, "--json",
                                "--methods", "integrated_gradients,occlusion,random").stdout)
    assert {"model", "task", "n", "strategy", "dropped", "accuracy", "macro_f1", "calibration", "faithfulness", "efficiency"} <= set(full)
    assert set(full["calibration"]) == CAL and full["n"] == 40 and full["dropped"] == []
    assert set(full["faithfulness"]) == {"integrated_gradients", "occlusion", "random"}
    assert all(set(v) == FAITH for v in full["faithfulness"].values())
    assert set(full["efficiency"]) == {"params", "kv_cache_bytes", "prefill_seconds"} and "temperature" in full
    pruned = json.loads(attnprune("evaluate", "--model", topic_organism, "--task", "synthetic-topic", "--n", 40, "--json",
                                  "--drop", 3, "--strategy", "last").stdout)
    assert pruned["dropped"] == [3, 4, 5] and pruned["strategy"] == "last"
    assert pruned["efficiency"]["kv_cache_bytes"] * 2 == full["efficiency"]["kv_cache_bytes"]
    assert pruned["efficiency"]["params"] < full["efficiency"]["params"]


def test_importance_json(topic_organism):
    rows = json.loads(attnprune("importance", "--model", topic_organism, "--task", "synthetic-topic", "--n", 16, "--json").stdout)
    assert [r["layer"] for r in rows] == list(range(6)) and all(0 <= r["importance"] <= 2 for r in rows)


def test_sst2_llama_organism_reaches_070(tmp_path, sst2_path):
    out = tmp_path/"llama-sst2"
    attnprune("organism", "--arch", "llama", "--task", sst2_path, "--out", out)
    r = json.loads(attnprune("evaluate", "--model", out, "--task", sst2_path, "--split", "test", "--json").stdout)
    assert r["n"] == 1821 and r["accuracy"] >= 0.70, r["accuracy"]
