from __future__ import annotations

import re
import subprocess

from devtools.services import REPO_ROOT


def _commands_of(target: str) -> str:
    # -n prints the recipes without running them; -B as if nothing were installed yet.
    return subprocess.run(
        ["make", "-n", "-B", target], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_make_run_installs_what_the_app_needs_and_not_checkov():
    commands = _commands_of("run")
    assert "-r requirements-dev.txt" in commands
    assert "npm ci" in commands
    assert "checkov" not in commands
    assert ".venv-tools" not in commands
    assert "-m devtools.run_local" in commands


def test_make_test_still_installs_checkov():
    assert "checkov" in _commands_of("test")


def test_make_lint_runs_ruff_then_mypy():
    commands = _commands_of("lint")
    assert "ruff check ." in commands
    assert "bin/mypy" in commands
    assert commands.index("ruff check .") < commands.index("bin/mypy")


def test_readme_names_every_debian_package_make_installs():
    makefile = (REPO_ROOT / "Makefile").read_text()
    listed = re.search(r"^DEBIAN_PACKAGES := ((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert listed is not None
    packages = listed.group(1).replace("\\", " ").split()
    readme = (REPO_ROOT / "README.md").read_text()
    assert packages and [name for name in packages if f"`{name}`" not in readme] == []
