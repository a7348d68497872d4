"""The crash harness in `make test`: every row of points.py, one trial each.

Each trial kills the host at its point (or at a random moment), starts it again on the
same storage, lets the work finish and asserts the scenario's invariants: nothing lost,
nothing duplicated, no lock held, counts exact. The full randomized sweep is sweep.py.
"""

from __future__ import annotations

import warnings

import pytest

from tests.chaos.points import POINTS, KillPoint
from tests.chaos.runner import run_trial
from tests.chaos.whole_app import WholeApp


def _param(point: KillPoint) -> object:
    marks = [pytest.mark.xfail(reason=point.known_bug, strict=True)] if point.known_bug else []
    return pytest.param(point, id=point.id, marks=marks)


@pytest.mark.slow
@pytest.mark.parametrize("point", [_param(point) for point in POINTS])
def test_after_a_crash_at_the_point_nothing_is_lost_duplicated_or_left_held(
    point: KillPoint, tmp_path, azurite, sfsim, sqlite_assets,
):
    app = WholeApp.create(tmp_path, azurite.connection_string, sfsim, sqlite_assets)

    trial = run_trial(app, point)

    findings = trial.findings
    if point.tolerated and findings.held_or_miscounted():
        warnings.warn(f"{point.id}: {findings.held_or_miscounted()} ({point.tolerated})",
                      stacklevel=1)
        assert findings.lost_or_duplicated() == [], f"{point.id} ({trial.died})"
    else:
        assert trial.violations == [], f"{point.id} ({trial.died}): {trial.violations}"
