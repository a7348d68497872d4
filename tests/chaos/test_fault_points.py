"""Every fault point the app declares is listed in points.py with a test that exists."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.chaos.points import FAULT_POINTS

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {"tests", ".venv", ".venv-tools", "node_modules"}


def _declared_fault_points() -> dict[str, str]:
    """The name of each point passed to `fault_point(CONSTANT)`, with where it is reached."""
    declared: dict[str, str] = {}
    for path in REPO_ROOT.glob("*/**/*.py"):
        if path.parts[len(REPO_ROOT.parts)] in SKIPPED:
            continue
        tree = ast.parse(path.read_text(), str(path))
        constants = {target.id: node.value.value for node in tree.body
                     if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "fault_point" and node.args):
                argument = node.args[0]
                assert isinstance(argument, ast.Name) and argument.id in constants, \
                    f"{path}:{node.lineno}: name the fault point with a module constant"
                declared[constants[argument.id]] = f"{path.name}:{node.lineno}"
    return declared


def test_every_declared_fault_point_is_listed_with_its_test() -> None:
    declared = _declared_fault_points()
    assert declared, "no fault_point(...) call found"
    listed = {point.point for point in FAULT_POINTS}
    assert set(declared) == listed, (
        f"declared only: {sorted(set(declared) - listed)}, "
        f"listed only: {sorted(listed - set(declared))}")
    for point in FAULT_POINTS:
        file, _, function = point.test.partition("::")
        assert f"def {function}(" in (REPO_ROOT / file).read_text(), point.test
