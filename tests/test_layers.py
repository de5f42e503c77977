"""The layer contracts in pyproject.toml hold: cli > flows > annotation_engine > unilseg > shards >
common, and Prefect stays in the wiring layers (import-linter; imports inside functions count too)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))",
]


def test_import_contracts_hold():
    run = subprocess.run(LINT, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout


PACKAGES = ("cli", "flows", "annotation_engine", "unilseg", "shards", "common")


def _lint_with_probe(tmp_path, package: str, source: str) -> subprocess.CompletedProcess:
    """import-linter on a copy of the packages with one module, ``<package>._layer_probe``, added."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.yaml"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / package / "_layer_probe.py").write_text(source)
    return subprocess.run(LINT, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_a_hidden_upward_import_is_caught(tmp_path):
    """A lower layer importing a higher one inside a function (how the old cycles hid) breaks it."""
    run = _lint_with_probe(tmp_path, "unilseg", "def f():\n    from annotation_engine import driver\n")
    assert run.returncode != 0 and "unilseg._layer_probe -> annotation_engine.driver" in run.stdout


def test_the_bottom_package_imports_nothing_of_ours(tmp_path):
    """common is the bottom: a helper there that reaches up into shards breaks the contract."""
    run = _lint_with_probe(tmp_path, "common", "from shards import storage\n")
    assert run.returncode != 0 and "common._layer_probe -> shards.storage" in run.stdout
