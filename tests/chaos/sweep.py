"""The full randomized crash sweep: many trials, each a named kill point or a SIGKILL at a
random moment, over the scenarios of points.py; prints the figures (not part of make test).

    .venv/bin/python tests/chaos/sweep.py [--trials 60] [--seed 16] [--random-share 0.5]

Starts its own Azurite and simulator; every trial gets a fresh SQLite source, task hub,
tables, container and simulator org. A trial is a named point drawn from the table (its
known bugs included, so their figures show) or, with probability --random-share, a
SIGKILL at a moment drawn uniformly in the runner's window after the work was started.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from devtools import services  # noqa: E402
from sfsim.settings import SimSettings  # noqa: E402
from sfsim.testing import start_simulator  # noqa: E402
from tests.chaos.points import POINTS, Hook, KillPoint  # noqa: E402
from tests.chaos.runner import run_trial  # noqa: E402
from tests.chaos.whole_app import WholeApp  # noqa: E402
from tests.sync.sources import create_asset_source  # noqa: E402

SCENARIOS = sorted({point.scenario for point in POINTS}, key=lambda scenario: scenario.__name__)


def draw_point(rng: random.Random, random_share: float) -> KillPoint:
    if rng.random() < random_share:
        return KillPoint(f"random#{rng.randrange(10**6)}", Hook.RANDOM, rng.choice(SCENARIOS))
    return rng.choice([point for point in POINTS if point.hook is not Hook.RANDOM])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--random-share", type=float, default=0.5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="chaos-sweep-"))
    azurite = services.start_azurite(workdir / "azurite", log_file=workdir / "azurite.log")
    sim = start_simulator(SimSettings(job_delay_seconds=0.02))
    totals: Counter[str] = Counter()
    by_point: dict[str, Counter[str]] = defaultdict(Counter)
    started = time.monotonic()
    try:
        for number in range(1, args.trials + 1):
            point = draw_point(rng, args.random_share)
            sim.reset()
            trial_dir = workdir / f"trial-{number}"
            trial_dir.mkdir()
            source = create_asset_source(
                services.sqlite_odbc_connection_string(trial_dir / "source.db"), "sqlite")
            app = WholeApp.create(trial_dir, azurite.connection_string, sim, source)
            trial = run_trial(app, point, random.Random(point.seed))
            findings = trial.findings
            label = point.id if point.hook is not Hook.RANDOM else \
                f"{point.scenario().name.replace(' ', '_')}:random"
            figures = {"trials": 1, "lost": findings.lost, "duplicated": findings.duplicated,
                       "locks_held": findings.locks_held,
                       "wrong_counts": len(findings.wrong_counts),
                       "not_reached": int(trial.died not in {"crash point", "killed"})}
            totals.update(figures)
            by_point[label].update(figures)
            verdict = "ok" if not trial.violations else "; ".join(trial.violations)[:300]
            print(f"[{number}/{args.trials}] {label} ({trial.died}): {verdict}", flush=True)
    finally:
        sim.stop()
        azurite.stop(grace_seconds=1.0)
    print(f"\nsweep: seed {args.seed}, {time.monotonic() - started:.0f} s")
    print("| kill point | trials | lost | duplicated | locks left held | counts wrong |")
    print("|---|---|---|---|---|---|")
    for label in sorted(by_point):
        row = by_point[label]
        print(f"| {label} | {row['trials']} | {row['lost']} | {row['duplicated']} | "
              f"{row['locks_held']} | {row['wrong_counts']} |")
    print(f"| **total** | {totals['trials']} | {totals['lost']} | {totals['duplicated']} | "
          f"{totals['locks_held']} | {totals['wrong_counts']} |")
    print(f"points not reached: {totals['not_reached']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
