"""What a sync job keeps between runs, in Table Storage, always under ETag conditions.

- watermarks table, partition = job name:
  - row `watermark` (watermarks.py): the last delivered position `(cursor, key)` and the
    run that owns it;
  - row `lock` (lease.py): the ShedLock-style lease `LockedUntil`/`LockedAt`/`RunId`;
  - row `ticks` (ticks.py): counters of timer ticks (started, skipped busy/held, ...);
  - rows `partition-<k>` (partitions.py): where each key partition of a run that syncs
    its pages in partitions has got to.
- runs table (runs.py), partition = job name, one row per run, newest first.
- dead-letter table (dead_letters.py), partition = job name, one row per rejected change.

`SyncState` (sync_state.py) holds one store per concern for every job of the app.
"""

from shared.sync.state.dead_letters import DeadLetter
from shared.sync.state.lease import Lease
from shared.sync.state.sync_state import SyncState, sync_state
from shared.sync.state.tables import utc_now
from shared.sync.state.watermarks import Watermark, WatermarkConflict

__all__ = ["DeadLetter", "Lease", "SyncState", "Watermark", "WatermarkConflict",
           "sync_state", "utc_now"]
