"""The shape rules CONTRIBUTING.md states, checked: modules under 400 lines, functions under 60,
and `storage_options` only where a location is built from the user's YAML (issue 22)."""

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the YAML field users write and the line that turns it into a Location; the storage package
STORAGE_OPTIONS_HOMES = {"flows/config.py", "shards/storage/location.py", "shards/storage/files.py"}


def _python_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in out.split()] or sorted(ROOT.glob("*/**/*.py"))


def test_no_module_over_400_lines_and_no_function_over_60():
    big, long = [], []
    for path in _python_files():
        source = path.read_text()
        if source.count("\n") > 400:
            big.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not big and not long, (big, long)


def test_storage_options_only_where_a_location_is_built():
    found = {
        str(p.relative_to(ROOT))
        for p in _python_files()
        if not p.relative_to(ROOT).parts[0] == "tests" and "storage_options" in p.read_text()
    }
    assert found <= STORAGE_OPTIONS_HOMES, found - STORAGE_OPTIONS_HOMES
