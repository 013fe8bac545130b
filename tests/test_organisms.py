"""Organism folders load back in a fresh process, for every architecture (issue 11.0).

A qwen2 organism used to load back as `Qwen2Tokenizer` (transformers picks it from the model type), which maps
every word to wrong ids. Each test trains a quick organism into a temporary cache, then a fresh Python process
loads its folder with plain `AutoTokenizer` / `AutoModelForCausalLM` (and with
`attnprune_nb.models.load_model`) and must get the same token ids and the same logits (1e-6) as the model and
tokenizer at training time.
"""
import json, os, subprocess, sys
import pytest
import torch
from attnprune_nb.organisms import ARCHS, train_organism, organism_path, organism_settings
from attnprune_nb.data import load_task

QUICK = dict(steps=3, n_layers=4, hidden=32)
PROMPTS = ["Review: the movie was great", "Review: a dull , boring plot and bad acting",
           "Review: zzzunknownword"]

FRESH = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
batch = tok(prompts, return_tensors="pt", padding=True)
with torch.no_grad(): logits = model(**batch).logits
from attnprune_nb.models import load_model
_, tok2 = load_model(folder, dtype="float32", device="cpu")
torch.save(dict(cls=type(tok).__name__, padding_side=tok.padding_side, ids=tok(prompts).input_ids,
                ids_load_model=tok2(prompts).input_ids, batch=batch.input_ids, logits=logits), out)
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("attnprune_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTNPRUNE_CACHE", str(d))
        yield d


@pytest.mark.parametrize("arch", ARCHS)
def test_organism_round_trips_in_fresh_process(arch, cache, tmp_path):
    model, tok = train_organism(arch, "synthetic-sentiment", progress=False, **QUICK)
    folder = organism_path(arch, "synthetic-sentiment", **QUICK)
    assert str(folder).startswith(str(cache)) and (folder/"organism.json").exists()
    batch = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad(): want = model.eval()(**batch).logits
    out = tmp_path/"fresh.pt"
    env = {**os.environ, "ATTNPRUNE_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", FRESH, str(folder), json.dumps(PROMPTS), str(out)], env=env,
                   check=True, timeout=300, capture_output=True)
    got = torch.load(out)
    assert got["cls"] in ("TokenizersBackend", "PreTrainedTokenizerFast"), got["cls"]
    assert got["padding_side"] == "left"
    assert got["ids"] == tok(PROMPTS).input_ids
    assert got["ids_load_model"] == tok(PROMPTS).input_ids
    assert torch.equal(got["batch"], batch.input_ids)
    torch.testing.assert_close(got["logits"], want, atol=1e-6, rtol=0)


def test_cache_version_moves_the_folder(cache):
    "Folders cached before tokenizers were saved to load back (version 1) are never reused."
    task = load_task("synthetic-sentiment")
    assert organism_settings("qwen2", task)["version"] >= 2
    assert "version" in organism_settings("qwen2", task, **QUICK)
