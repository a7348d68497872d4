"""The pace of a level's jobs and the poll predicted from it (shared/bulkload/progress.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.progress import JobPace, observed_pace, predicted_poll_at

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_pace_counts_only_jobs_that_completed_with_their_times() -> None:
    closed = [JobSnapshot("750A", "UploadComplete", changed_at=at(0)),
              JobSnapshot("750B", "UploadComplete", changed_at=at(0.5)),
              JobSnapshot("750C", "UploadComplete", changed_at=at(0)),
              JobSnapshot("750D", "UploadComplete")]
    ended = [JobSnapshot("750A", "JobComplete", 10_000, changed_at=at(1.5), active_seconds=0.5),
             JobSnapshot("750B", "JobComplete", 20_000, changed_at=at(3.0), active_seconds=1.5),
             JobSnapshot("750C", "Failed", 5_000, changed_at=at(9), active_seconds=0.1),
             JobSnapshot("750D", "JobComplete", 5_000, changed_at=at(2), active_seconds=0.1)]

    pace = observed_pace(closed, ended)

    # Queued 1.0 s each; 30,000 records in 2 s of work.
    assert pace == JobPace(queued_seconds=1.0, records_per_second=15_000)


def test_no_pace_from_jobs_without_times_or_records() -> None:
    closed = [JobSnapshot("750A", "UploadComplete"),
              JobSnapshot("750B", "UploadComplete", changed_at=at(0))]
    ended = [JobSnapshot("750A", "JobComplete", 10, changed_at=at(1), active_seconds=0.1),
             JobSnapshot("750B", "JobComplete", 0, changed_at=at(1), active_seconds=0.0)]

    assert observed_pace(closed, ended) is None


def test_the_poll_waits_for_the_slowest_running_job_within_the_interval() -> None:
    pace = JobPace(queued_seconds=1.0, records_per_second=10_000)
    jobs = [JobSnapshot("750A", "InProgress"), JobSnapshot("750B", "UploadComplete"),
            JobSnapshot("750C", "JobComplete", 50_000)]

    due = predicted_poll_at(jobs, [5_000, 20_000, 50_000], pace, closed_at=at(0), now=at(0.4),
                            interval=10.0, deadline=at(600))
    capped = predicted_poll_at(jobs, [5_000, 20_000, 50_000], pace, closed_at=at(0),
                               now=at(0.4), interval=1.0, deadline=at(600))
    at_deadline = predicted_poll_at(jobs, [5_000, 20_000, 50_000], pace, closed_at=at(0),
                                    now=at(0.4), interval=10.0, deadline=at(2))

    # 750B: queued 1 s, then 20,000 at 10,000 a second; the ended 750C is not waited for.
    assert (due, capped, at_deadline) == (at(3), at(1.4), at(2))
