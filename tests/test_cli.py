"""The `attnprune` command line: the contract of ../shared/DESIGN.md, clear errors, and the organism round trip."""
import json, shutil
from pathlib import Path
import pytest
from conftest import attnprune, ROOT

CAL = {"ece", "ece_equal_mass", "smooth_ece", "mce", "brier", "nll", "aurc"}
FAITH = {"comprehensiveness", "sufficiency", "comprehensiveness_aopc", "sufficiency_aopc", "decision_flip_fraction"}


COMMANDS = ("run", "organism", "importance", "evaluate", "compare", "models", "report", "docs")


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
                   "run": ["--config", "--out", "--shard", "--backend", "--address"],
                   "compare": ["--model", "--pruned", "--drop", "--strategy", "--k", "--task", "--n", "--shots",
                               "--demo-sets", "--margin", "--methods", "--fail-on", "--out", "--json",
                               "--text-column", "--label-column", "--labels"]}.get(cmd, []):
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


# --- issue 20: what a new user hit. Each is one line on stderr, exit 2, naming the file, the line and the fix. ---

def one_error_line(r):
    "The single stderr line of a refused command (asserting exit 2 and no traceback)."
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("attnprune: error: "), r.stderr
    return lines[0]


def main_run(*args):
    "Run `attnprune ARGS` through `cli.main` in this process (fast: no start-up); returns a CompletedProcess."
    import contextlib, io, subprocess
    from attnprune_nb.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: main([str(a) for a in args]); code = 0
        except SystemExit as e: code = e.code
    return subprocess.CompletedProcess(["attnprune", *args], code, out.getvalue(), err.getvalue())


JSONL_NO_LABEL = b'{"text": "fine", "label": 0}\n{"text": "no label here"}\n{"text": "bad", "label": 1}\n'

@pytest.mark.parametrize("name,content,expected", [
    ("one.jsonl", JSONL_NO_LABEL, ["one.jsonl, line 2: no 'label' value", "give every row a label"]),
    ("task/train.jsonl", JSONL_NO_LABEL, ["train.jsonl, line 2: no 'label' value"]),  # folder with meta.json
    ("one.jsonl", b'{"text": "fine", "label": 0}\n{"label": 1}\n', ["one.jsonl, line 2: no 'text' value"]),
    ("one.jsonl", b'{"text": "fine", "label": 0}\n{"text": null, "label": 1}\n', ["line 2: no 'text' value"]),
    ("one.csv", b"text,label\nfine,pos\nbad,\n", ["one.csv, line 3: no 'label' value"]),
    ("one.tsv", b"text\tlabel\nfine\t0\n\nbad\t \n", ["one.tsv, line 4: no 'label' value"]),
    ("one.jsonl", b'{"text": "fine", "label": 0}\n{"text": "caf\xe9", "label": 1}\n',
     ["one.jsonl, line 2 (byte 42): byte 0xe9 is not UTF-8 text", "re-save the file as UTF-8"]),
    ("task/train.csv", b"text,label\nfine,0\ntr\xe8s bien,1\n", ["train.csv, line 3 (byte 20)", "re-save the file as UTF-8"]),
    ("one.jsonl", b'{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", "label": 7}\n',
     ["one.jsonl: label ids run up to 7 (line 3) but ids 2, 3, 4, 5, 6 never occur", "--labels NAME,...",
      "renumber the labels 0..2"]),
])
def test_bad_task_file_names_file_line_and_fix(tmp_path, name, content, expected):
    f = tmp_path/name
    f.parent.mkdir(exist_ok=True)
    f.write_bytes(content)
    if f.parent.name == "task": (f.parent/"meta.json").write_text('{"name": "t", "labels": ["neg", "pos"]}')
    task = f if f.parent == tmp_path else f.parent
    line = one_error_line(main_run("organism", "--arch", "gpt2", "--task", task, "--out", tmp_path/"m"))
    assert str(f) in line and all(e in line for e in expected), line
    assert not (tmp_path/"m").exists()


def test_label_ids_past_the_classes_refused_then_loaded_with_labels(tmp_path):
    "Ids 0, 1, 7 in one file: refused (they imply 8 classes, 5 unseen), loaded when --labels names the 8 classes."
    from attnprune_nb.cli import _task
    f = tmp_path/"one.jsonl"
    f.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", "label": 7}\n')
    line = one_error_line(main_run("importance", "--model", "nowhere", "--task", f))
    assert f"{f}: label ids run up to 7 (line 3)" in line, line
    assert _task(str(f), labels="a,b,c,d,e,f,g,h").split("one").label.tolist() == [0, 1, 7]


UNWRITABLE = "/sys/attnprune-test-out"  # not writable even by root (chmod does not stop root)

@pytest.mark.parametrize("cmd", ["run", "organism", "report"])
@pytest.mark.parametrize("where", ["file", "below_file", "unwritable"])
def test_out_folder_checked_before_any_work(tmp_path, cmd, where):
    (tmp_path/"taken").write_text("a file")
    out = {"file": tmp_path/"taken", "below_file": tmp_path/"taken"/"sub", "unwritable": UNWRITABLE}[where]
    if where == "unwritable" and not Path("/sys").is_dir(): pytest.skip("no /sys here")
    opt = "--results" if cmd == "report" else "--out"
    args = {"run": ["run", "--config", ROOT/"configs"/"smoke.yaml", "--out", out],
            "organism": ["organism", "--arch", "gpt2", "--task", "synthetic-topic", "--out", out],
            "report": ["report", "--results", out]}[cmd]
    r = main_run(*args)
    line = one_error_line(r)
    assert r.stdout == "" and line.startswith(f"attnprune: error: {opt} {out}"), line
    assert {"file": "is a file, not a folder", "below_file": f"{tmp_path/'taken'} is a file, so no folder",
            "unwritable": "cannot create files in /sys"}[where] in line, line


def test_errors_are_one_line_from_the_console_script_too(tmp_path):
    "The same checks through the installed `attnprune` script, in a fresh process."
    (tmp_path/"one.jsonl").write_bytes(JSONL_NO_LABEL)
    line = one_error_line(attnprune("evaluate", "--model", "gpt2-nowhere", "--task", tmp_path/"one.jsonl", check=False))
    assert f"{tmp_path/'one.jsonl'}, line 2: no 'label' value" in line, line
    (tmp_path/"taken").write_text("a file")
    line = one_error_line(attnprune("run", "--config", ROOT/"configs"/"smoke.yaml", "--out", tmp_path/"taken", check=False))
    assert f"--out {tmp_path/'taken'} is a file, not a folder" in line, line


@pytest.fixture(scope="module")
def topic20(tmp_path_factory):
    "A task folder whose test split has 20 rows of synthetic-topic (the topic organism's words)."
    from attnprune_nb.data import load_task
    t = load_task("synthetic-topic")
    d = tmp_path_factory.mktemp("topic20")
    for split, n in (("train", 40), ("test", 20)):
        df = t.split(split).head(n).assign(label=lambda x: [t.classes[i] for i in x.label])
        df[["text", "label"]].to_json(d/f"{split}.jsonl", orient="records", lines=True)
    return d


def test_n_larger_than_split_says_so_in_one_line(topic_organism, topic20):
    r = attnprune("evaluate", "--model", topic_organism, "--task", topic20, "--n", 50, "--json")
    assert json.loads(r.stdout)["n"] == 20  # stdout stays one JSON object
    note = "attnprune: note: --n 50 is more than the 20 rows of split test; using all 20."
    assert [l for l in r.stderr.splitlines() if l.startswith("attnprune")] == [note], r.stderr
    r = attnprune("importance", "--model", topic_organism, "--task", topic20, "--n", 100, "--json")
    assert len(json.loads(r.stdout)) == 6
    assert "attnprune: note: --n 100 is more than the 40 rows of split train; using all 40." in r.stderr, r.stderr
    r = attnprune("evaluate", "--model", topic_organism, "--task", topic20, "--n", 10, "--json")
    assert json.loads(r.stdout)["n"] == 10 and "note:" not in r.stderr


# attnprune compare: exit 0 (held), 1 (worse), 2 (bad input, one line), --json, --out

@pytest.fixture(scope="module")
def sentiment_organism(tmp_path_factory):
    "A Llama organism of synthetic-sentiment (its attention layer 1 carries negation: dropping it costs accuracy)."
    out = tmp_path_factory.mktemp("organism")/"llama-sentiment"
    attnprune("organism", "--arch", "llama", "--task", "synthetic-sentiment", "--out", out)
    return out


COMPARE = ["--task", "synthetic-sentiment", "--n", 48, "--shots", 0, "--methods", "occlusion", "--faithfulness-n", 8]


def test_compare_a_model_with_itself_exits_0_with_zero_changes(sentiment_organism):
    r = attnprune("compare", "--model", sentiment_organism, "--pruned", sentiment_organism, *COMPARE, "--json",
                  check=False)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["exit_code"] == 0 and c["dropped"] == []
    assert {a: d["verdict"] for a, d in c["aspects"].items()} == {
        "accuracy": "held", "calibration": "unchanged", "faithfulness": "unchanged"}
    assert all(row["change"] == row["low"] == row["high"] == 0 for row in c["rows"])


def test_compare_without_the_key_layer_exits_1_and_writes_the_card(sentiment_organism, tmp_path):
    r = attnprune("compare", "--model", sentiment_organism, "--drop", 1, *COMPARE, "--out", tmp_path/"o", "--json",
                  check=False)
    assert r.returncode == 1, r.stderr
    printed = json.loads(r.stdout)
    assert printed == json.loads((tmp_path/"o"/"compare.json").read_text())  # the same JSON, file and stdout
    assert printed["aspects"]["accuracy"]["verdict"] == "worse" and printed["exit_code"] == 1
    assert printed["summary"] in (tmp_path/"o"/"compare.md").read_text()
    assert (tmp_path/"o"/"compare.png").stat().st_size > 0
    text = attnprune("compare", "--model", sentiment_organism, "--drop", 1, *COMPARE, check=False)
    verdicts = printed["summary"].split("; KV cache")[0]  # the prefill ratio is a timing: it varies
    assert text.returncode == 1 and f"summary: {verdicts}; KV cache 0.83x" in text.stdout, text.stdout
    assert "exit 1: a counted aspect got significantly worse" in text.stdout
    none = attnprune("compare", "--model", sentiment_organism, "--drop", 1, *COMPARE, "--fail-on", "", check=False)
    assert none.returncode == 0 and "(counted: none)" in none.stdout  # nothing counted: a report only


@pytest.mark.parametrize("args,message", [
    (["--drop", "1,1"], "Duplicate layer ids"),
    (["--drop", "6"], "out of range"),
    (["--drop", "1", "--strategy", "last", "--k", "1"], "exactly one pruned model"),
    (["--strategy", "last"], "--strategy and --k go together"),
    (["--drop", "1", "--fail-on", "efficiency"], "never counted"),
    (["--drop", "1", "--margin", "3"], "fraction in (0, 1)"),
])
def test_compare_bad_options_exit_2_in_one_line(sentiment_organism, args, message):
    line = one_error_line(attnprune("compare", "--model", sentiment_organism, *COMPARE, *args, check=False))
    assert message in line, line


def test_compare_refuses_other_tokenizers_and_bad_llm_drop_lists(sentiment_organism, topic_organism, tmp_path):
    line = one_error_line(attnprune("compare", "--model", sentiment_organism, "--pruned", topic_organism,
                                    *COMPARE, check=False))
    assert "pruned model's tokenizer" in line, line
    bad = tmp_path/"llm-drop"
    shutil.copytree(sentiment_organism, bad)
    cfg = json.loads((bad/"config.json").read_text())
    for lists, message in ((dict(drop_attn_list=[True, False]), "2 booleans for a 6-layer model"),
                           (dict(drop_attn_list=[1], drop_mlp_list=[2]), "drops attention only")):
        (bad/"config.json").write_text(json.dumps(cfg | lists))
        line = one_error_line(attnprune("compare", "--model", sentiment_organism, "--pruned", bad, *COMPARE,
                                        check=False))
        assert message in line, line

