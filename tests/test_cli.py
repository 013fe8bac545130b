"""The `attnprune` command line: the contract of ../shared/DESIGN.md, clear errors, and the organism round trip."""
import json
import pytest
from conftest import attnprune, ROOT

CAL = {"ece", "ece_equal_mass", "smooth_ece", "mce", "brier", "nll", "aurc"}
FAITH = {"comprehensiveness", "sufficiency", "comprehensiveness_aopc", "sufficiency_aopc", "decision_flip_fraction"}


COMMANDS = ("run", "organism", "importance", "evaluate", "models", "report", "docs")


def test_help_lists_every_subcommand():
    out = attnprune("--help").stdout
    for cmd in COMMANDS: assert f"  {cmd} " in out, out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_of_each_command_shows_its_parameter_comments(cmd):
    from attnprune_nb import cli
    from fastcore.docments import docments
    out = " ".join(attnprune(cmd, "--help").stdout.split())
    flat = "".join(out.split())  # argparse wraps help at spaces and after hyphens
    for name, d in docments(cli.COMMANDS[cmd], full=True, returns=False).items():
        assert f"--{name.replace('_', '-')}" in out, name
        assert "".join(d.docment.split()) in flat, (name, d.docment)
    for option in {"evaluate": ["--split", "--n", "--drop", "--strategy", "--methods", "--seed", "--shots", "--chat",
                                "--device-map", "--json", "--text-column", "--label-column", "--labels"],
                   "run": ["--config", "--out", "--shard", "--backend", "--address"]}.get(cmd, []):
        assert option in out, option


def test_models_lists_the_builtin_llms():
    r = attnprune("models", check=False)
    assert r.returncode == 0, r.stderr
    for word in ("smollm2-135m", "gemma-3-270m", "qwen2.5-coder-0.5b", "arch", "layers", "params", "licence", "installed"):
        assert word in r.stdout, word


def test_ray_backend_is_lazy_and_named(tmp_path):
    (tmp_path/"s.yaml").write_text("models: [{arch: gpt2}]\ntasks: [synthetic-topic]\n")
    r = attnprune("run", "--config", tmp_path/"s.yaml", "--out", tmp_path/"o", "--backend", "slurm", check=False)
    assert r.returncode == 2 and "--backend must be local or ray" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--model", "./missing-model", "--task", "synthetic-sentiment"], "not found: ./missing-model"),
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
    model = AutoModelForCausalLM.from_pretrained(topic_organism)
    tok = AutoTokenizer.from_pretrained(topic_organism)
    assert model.config.model_type == "gpt2" and tok("a goal for the team").input_ids


def test_evaluate_json_contract(topic_organism):
    full = json.loads(attnprune("evaluate", "--model", topic_organism, "--task", "synthetic-topic", "--n", 40, "--json",
                                "--methods", "integrated_gradients,occlusion,random").stdout)
    assert {"model", "task", "n", "strategy", "dropped", "accuracy", "macro_f1", "calibration", "faithfulness", "efficiency"} <= set(full)
    assert set(full["calibration"]) == CAL and full["n"] == 40 and full["dropped"] == []
    assert set(full["faithfulness"]) == {"integrated_gradients", "occlusion", "random"}
    for v in full["faithfulness"].values():
        assert set(v) - {"decision_flip_rate"} == FAITH
        if "decision_flip_rate" in v: assert 0 <= v["decision_flip_rate"] <= 1
    assert set(full["efficiency"]) == {"params", "kv_cache_bytes", "prefill_seconds"} and "temperature" in full
    assert full["fit_split"] in ("calibration", "validation") and full["split"] == "test"
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
