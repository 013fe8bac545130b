"""The documentation site: the fallback build (no Quarto here) has every module page and every exported function."""
import importlib, shutil, subprocess, tempfile
from pathlib import Path
import pytest
from conftest import ROOT

MODULES = ["core", "data", "models", "classify", "prune", "attribution", "faithfulness", "calibration", "experiment", "plots", "docs"]


@pytest.fixture(scope="module")
def site():
    from attnprune_nb.docs import build_docs
    return build_docs(ROOT, fallback=True)


def test_every_module_page_and_function(site):
    assert (site/"index.html").exists()
    index = (site/"index.html").read_text()
    for mod in MODULES:
        page = site/f"{mod}.html"
        assert page.exists(), f"no page for {mod}"
        text = page.read_text()
        assert f'href="{mod}.html"' in index, f"{mod} missing from navigation"
        m = importlib.import_module(f"attnprune_nb.{mod}")
        for name in getattr(m, "__all__", []):
            obj = getattr(m, name)
            if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", "").startswith("attnprune_nb"):
                assert name in text, f"{mod}.{name} has no entry on {page.name}"


def test_pages_keep_prose_examples_and_figures(site):
    prune = (site/"prune.html").read_text()
    assert "He et al. 2024" in prune and "drop_attention" in prune and "<pre" in prune
    assert (site/"study.html").exists() and "<img" in (site/"study.html").read_text()


def _browser():
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.parametrize("page", ["index", "prune"])
def test_headless_screenshot(site, page):
    browser = _browser()
    if browser is None: pytest.skip("no headless browser here (.ci/run installs Debian's chromium)")
    shot = ROOT/"figures"/f"docs_{page}.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--screenshot={shot}", "--window-size=1280,900", (site/f"{page}.html").as_uri()], check=True, timeout=120, capture_output=True)
    assert shot.exists() and shot.stat().st_size > 10_000
