"""One crash trial: arm, drive until the host dies, restart on the same storage, finish,
check. Used by the kill-point tests and by the randomized sweep (sweep.py)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from tests.chaos.points import Hook, KillPoint
from tests.chaos.scenarios import Findings
from tests.chaos.whole_app import WholeApp

# Long enough for the slowest scenario to reach its last point on a loaded machine.
CRASH_TIMEOUT = 90.0
# A random kill lands within this many seconds after the work was started.
RANDOM_WINDOW = (0.2, 4.0)


@dataclass
class Trial:
    point: KillPoint
    died: str  # how the host ended: "crash point", "killed", or what went wrong
    findings: Findings

    @property
    def violations(self) -> list[str]:
        return self.findings.violations()


def run_trial(app: WholeApp, point: KillPoint, rng: random.Random | None = None) -> Trial:
    scenario = point.scenario()
    scenario.prepare(app)
    armed = {point.hook.setting: point.point} if point.hook is not Hook.RANDOM else {}
    app.start(armed)
    scenario.drive(app)
    if point.hook is Hook.RANDOM:
        rng = rng or random.Random(point.seed)
        time.sleep(rng.uniform(*RANDOM_WINDOW))
        app.kill()
        died = "killed"
    else:
        code = app.wait_for_exit(CRASH_TIMEOUT)
        if code != point.hook.exit_code:
            app.stop()
            reason = "never reached" if code is None else f"the host exited with {code}"
            return Trial(point, reason, Findings(other=[
                f"crash point {point.point} not reached ({reason}):\n{app.output()[-3000:]}"]))
        died = "crash point"
    app.start()
    try:
        scenario.finish(app)
        findings = scenario.check(app)
    finally:
        app.stop()
    return Trial(point, died, findings)
