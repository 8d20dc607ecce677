"""The house's rules, checked by a real tool: import-linter's contracts in pyproject.toml."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.skipif(not Path(LINT).exists(), reason="import-linter is in the test extras")


def lint(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = None if extra_path is None else {**os.environ, "PYTHONPATH": str(extra_path)}
    return subprocess.run([LINT, "--config", "pyproject.toml", "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_every_import_contract_of_the_project_is_kept():
    out = lint(ROOT, extra_path=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "7 kept, 0 broken" in out.stdout


def test_the_circle_contract_fails_on_a_circle(tmp_path):
    """The same acyclic contract, on a two-module package whose modules import each other, is broken."""
    pkg = tmp_path / "loop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from loop import b\n")
    (pkg / "b.py").write_text("from loop import a\n")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.importlinter]
        root_package = "loop"

        [[tool.importlinter.contracts]]
        name = "No import circles, at any depth"
        type = "acyclic_siblings"
        ancestors = ["loop"]
    """))
    out = lint(tmp_path, extra_path=tmp_path)
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout + out.stderr


def test_the_layer_contract_fails_when_the_core_imports_the_gui(tmp_path):
    """A copy of the package in which one core module imports the GUI breaks the first contract."""
    copy = tmp_path / "diffview"
    shutil.copytree(ROOT / "diffview", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "core" / "schedule.py"
    target.write_text(target.read_text() + "\nimport diffview.gui.widgets.text  # noqa: E402,F401\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = lint(tmp_path, extra_path=tmp_path)
    assert out.returncode != 0, out.stdout
    assert "The core never imports the GUI, the command line or Qt BROKEN" in out.stdout
