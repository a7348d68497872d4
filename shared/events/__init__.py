"""The event queue (seed 001): any system posts record changes, one drain processes them.

    POST /api/events -> validate (validation.py) -> store, collapsed per object and id
        (queue.py, ETag-conditional writes) -> wake the drain (wake.py)
    event_drain orchestration (orchestrators/events.py), one at a time (fixed instance id):
        take a batch (queue.py) -> stage it as an instance of the batch job `asset-events`
        (asset_events_job.py, batch_processing.py) -> run that instance as a
        sub-orchestration -> settle its per-record outcomes (settling.py: remove if
        unchanged, retry later, dead-letter) -> ...
        -> finish only if nothing was posted since its last empty read (signal.py)
"""

# The settings section in settings.py is declared with shared.config's framework, and
# shared.config imports that section: importing shared.config first settles the cycle.
import shared.config  # noqa: F401
