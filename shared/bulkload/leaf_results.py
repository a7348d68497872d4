"""The successes of a leaf level (one no other level hangs off), kept as Salesforce sent
them and read only when the results report is first asked for.

    levels/{i}/successes-{k}.csv   the k-th job's successfulResults, as downloaded

A parent level's successes are read at once: its children need their Salesforce ids. A
leaf's are needed by nothing but the results report, and they are most of a load's rows
(the contacts under the accounts): copying them unparsed saves reading, writing and
uploading them again between the last job's end and the load's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.request import LoadLevel
from shared.bulkload.store import LoadStore, spooled_file
from shared.salesforce import SalesforceClient
from shared.salesforce.bulk_csv import read_ingest_csv_rows

SUCCESSES_FILE = "successes-{}.csv"
SUCCESS_KIND = "successfulResults"
# Load jobs are created with the default column delimiter (jobs.py).
JOB_DELIMITER = "COMMA"


def is_leaf(levels: Sequence[LoadLevel], level_index: int) -> bool:
    return not any(level.parent == level_index for level in levels)


def copy_leaf_successes(store: LoadStore, client: SalesforceClient,
                        jobs: Sequence[JobSnapshot], level_index: int) -> int:
    """Keep each job's successes as downloaded; returns how many records succeeded, as
    Salesforce counts them (processed less failed)."""
    succeeded = 0
    for number, job in enumerate(jobs):
        if not (job.processed > job.failed or job.unsuccessful):
            continue  # its counts tell the list is empty
        with spooled_file() as out:
            client.copy_results(job.id, SUCCESS_KIND, out)
            out.seek(0)
            store.upload_file(store.level_blob(level_index, SUCCESSES_FILE.format(number)),
                              out)
        succeeded += max(job.processed - job.failed, 0)
    return succeeded


def leaf_success_rows(store: LoadStore, level_index: int
                      ) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
    """(header, rows) of each job's kept successes, in job order (a job without
    successes kept no file)."""
    prefix = store.level_blob(level_index, "successes-")
    numbers = sorted(int(name[len(prefix):-len(".csv")])
                     for name in store.container.list_blob_names(name_starts_with=prefix))
    for number in numbers:
        with store.download(store.level_blob(level_index,
                                             SUCCESSES_FILE.format(number))) as local:
            rows = read_ingest_csv_rows(local, JOB_DELIMITER)  # type: ignore[arg-type]
            header = next(rows, None)
            if header is not None:
                yield header, rows


def has_kept_successes(store: LoadStore, level_index: int) -> bool:
    prefix = store.level_blob(level_index, "successes-")
    return any(True for _ in store.container.list_blob_names(name_starts_with=prefix))
