"""Mule Batch's semantics, knob by knob, on the engine without any runtime (engine_harness)."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest
from azure.storage.blob import BlobServiceClient

from shared.batch.failures import read_record_failures
from shared.batch.job import (
    AcceptPolicy,
    Aggregator,
    BatchJob,
    BatchRecord,
    BatchStep,
)
from shared.batch.records import parse_records
from shared.batch.store import AzureBlobStore, InstanceFolder
from tests.batch.engine_harness import run_instance


def records(count: int) -> list[dict]:
    return [{"n": n} for n in range(count)]


def keep(_record: BatchRecord) -> None:
    return None


def fail_odd(record: BatchRecord) -> None:
    if record.payload["n"] % 2:
        raise ValueError(f"odd {record.payload['n']}")


class Seen:
    """Step functions that note which records they saw, per step."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, int]] = Counter()
        self.lock = threading.Lock()

    def step(self, name: str, fail_if: Callable[[BatchRecord], bool] | None = None
             ) -> Callable[[BatchRecord], None]:
        def run(record: BatchRecord) -> None:
            with self.lock:
                self.calls[(name, record.index)] += 1
            if fail_if is not None and fail_if(record):
                raise KeyError(f"{name} refused {record.index}")
        return run

    def indexes(self, name: str) -> list[int]:
        return sorted(index for step, index in self.calls if step == name)


def test_accept_policies_route_records_by_earlier_failures() -> None:
    seen = Seen()
    job = BatchJob("policies", block_size=7, max_failed_records=-1, steps=(
        BatchStep("first", fail_odd),
        BatchStep("no-failures", seen.step("no-failures")),
        BatchStep("only-failures", seen.step("only-failures"),
                  accept_policy=AcceptPolicy.ONLY_FAILURES),
        BatchStep("all", seen.step("all"), accept_policy=AcceptPolicy.ALL),
    ))
    run = run_instance(job, records(20))
    assert seen.indexes("no-failures") == list(range(0, 20, 2))
    assert seen.indexes("only-failures") == list(range(1, 20, 2))
    assert seen.indexes("all") == list(range(20))
    result = run.result
    assert result["status"] == "SUCCESSFUL"
    assert (result["totalRecords"], result["processedRecords"], result["successfulRecords"],
            result["failedRecords"]) == (20, 20, 10, 10)
    assert result["steps"][0] == {"stepName": "first", "receivedRecords": 20,
                                  "successfulRecords": 10, "failedRecords": 10}
    assert result["steps"][2]["receivedRecords"] == 10
    assert result["failuresByStepAndType"] == [
        {"step": "first", "exceptionType": "ValueError", "count": 10}]


def test_accept_expression_and_policy_must_both_hold_and_skipped_records_flow_on() -> None:
    seen = Seen()
    job = BatchJob("expressions", block_size=5, max_failed_records=-1, steps=(
        BatchStep("first", fail_odd),
        BatchStep("big-ok", seen.step("big-ok"),
                  accept_expression=lambda record: record.payload["n"] >= 10),
        BatchStep("big-failed", seen.step("big-failed"),
                  accept_policy=AcceptPolicy.ONLY_FAILURES,
                  accept_expression=lambda record: record.payload["n"] >= 10),
        BatchStep("last", seen.step("last"), accept_policy=AcceptPolicy.ALL),
    ))
    run_instance(job, records(16))
    assert seen.indexes("big-ok") == [10, 12, 14]
    assert seen.indexes("big-failed") == [11, 13, 15]
    assert seen.indexes("last") == list(range(16))


def test_an_accept_expression_that_raises_fails_the_record_the_step_received() -> None:
    """Mule counts a record a step took up as received, whatever then failed it: its
    accept expression as much as its processors. Before, a raising expression failed the
    record without counting it received (received < successful + failed)."""

    def divisible_by_three_raises(record: BatchRecord) -> bool:
        if record.payload["n"] % 3 == 0:
            raise ZeroDivisionError(f"cannot judge {record.payload['n']}")
        return True

    def commit(group: Sequence[BatchRecord]) -> list[BaseException | None]:
        return [None] * len(group)

    job = BatchJob("raising-expressions", block_size=4, max_failed_records=-1, steps=(
        BatchStep("check", fail_odd, accept_expression=divisible_by_three_raises),
        BatchStep("load", aggregator=Aggregator(size=5, commit=commit),
                  accept_policy=AcceptPolicy.ALL,
                  accept_expression=divisible_by_three_raises),
    ))
    result = run_instance(job, records(12)).result
    # check: 0, 3, 6, 9 raise in the expression; of the rest, 1, 5, 7, 11 are odd.
    # load: takes all twelve; 0, 3, 6, 9 raise again, the other eight commit.
    assert result["steps"] == [
        {"stepName": "check", "receivedRecords": 12, "successfulRecords": 4,
         "failedRecords": 8},
        {"stepName": "load", "receivedRecords": 12, "successfulRecords": 8,
         "failedRecords": 4},
    ]
    assert (result["processedRecords"], result["successfulRecords"],
            result["failedRecords"]) == (12, 4, 8)
    assert result["failuresByStepAndType"] == [
        {"step": "check", "exceptionType": "ValueError", "count": 4},
        {"step": "check", "exceptionType": "ZeroDivisionError", "count": 4},
        {"step": "load", "exceptionType": "ZeroDivisionError", "count": 4}]


def test_a_step_may_replace_the_payload_for_later_steps() -> None:
    seen: list[dict] = []
    job = BatchJob("mapping", block_size=3, steps=(
        BatchStep("double", lambda record: {"n": record.payload["n"] * 2}),
        BatchStep("note", lambda record: seen.append(record.payload)),
    ))
    run_instance(job, records(4))
    assert sorted(item["n"] for item in seen) == [0, 2, 4, 6]


def test_records_within_a_block_run_in_order() -> None:
    order: list[int] = []
    job = BatchJob("ordered", block_size=50, max_concurrency=1,
                   steps=(BatchStep("note", lambda record: order.append(record.index)),))
    run_instance(job, records(120))
    assert order == list(range(120))


def test_max_failed_records_zero_stops_at_the_first_failure() -> None:
    seen = Seen()
    job = BatchJob("stop-first", block_size=10, max_failed_records=0, max_concurrency=2,
                   steps=(BatchStep("s", seen.step("s", lambda r: r.index == 25)),))
    result = run_instance(job, records(200)).result
    assert result["status"] == "FAILED_PROCESS_RECORDS"
    assert result["failedRecords"] == 1
    # The block of record 25 and at most one other block in flight ran; later ones never did.
    assert len(seen.indexes("s")) <= 30 + 10
    assert result["processedRecords"] < 200


@pytest.mark.parametrize("limit", [5, 30])
def test_max_failed_records_n_overshoots_by_at_most_the_blocks_in_flight(limit: int) -> None:
    block_size, concurrency = 10, 3
    job = BatchJob("stop-n", block_size=block_size, max_failed_records=limit,
                   max_concurrency=concurrency, steps=(BatchStep("s", fail_odd),))
    result = run_instance(job, records(1000)).result
    assert result["status"] == "FAILED_PROCESS_RECORDS"
    assert limit < result["failedRecords"] <= limit + block_size * concurrency
    assert result["processedRecords"] < 1000


@pytest.mark.parametrize("limit", [0, 3])
def test_a_stop_while_blocks_wait_at_an_aggregator_keeps_the_counts_consistent(
    limit: int,
) -> None:
    # Records fail in the first step; the others of their blocks wait at the aggregator
    # when the limit is passed, and no group is committed after the stop. A failed record
    # is processed (Mule: processedRecords = successfulRecords + failedRecords); the
    # records left waiting are neither.
    groups = Groups()
    job = BatchJob("stop-waiting", block_size=10, max_failed_records=limit, max_concurrency=2,
                   steps=(BatchStep("check", fail_odd),
                          BatchStep("load", aggregator=Aggregator(size=500,
                                                                  commit=groups.commit))))
    result = run_instance(job, records(1000)).result
    assert result["status"] == "FAILED_PROCESS_RECORDS"
    assert result["failedRecords"] > limit
    assert result["processedRecords"] == result["successfulRecords"] + result["failedRecords"]
    assert result["successfulRecords"] == sum(map(len, groups.groups))
    step = {entry["stepName"]: entry for entry in result["steps"]}
    assert result["failedRecords"] == step["check"]["failedRecords"]


def test_max_failed_records_n_not_reached_is_successful() -> None:
    job = BatchJob("under-n", block_size=10, max_failed_records=50,
                   steps=(BatchStep("s", fail_odd),))
    result = run_instance(job, records(100)).result
    assert (result["status"], result["failedRecords"], result["processedRecords"]) == (
        "SUCCESSFUL", 50, 100)


def test_max_failed_records_unlimited_processes_everything() -> None:
    job = BatchJob("unlimited", block_size=10, max_failed_records=-1,
                   steps=(BatchStep("s", fail_odd),))
    result = run_instance(job, records(500)).result
    assert (result["status"], result["failedRecords"], result["successfulRecords"],
            result["processedRecords"]) == ("SUCCESSFUL", 250, 250, 500)


class Groups:
    def __init__(self, fail_index: Callable[[BatchRecord], bool] | None = None) -> None:
        self.groups: list[list[int]] = []
        self.lock = threading.Lock()
        self.fail_index = fail_index

    def commit(self, group: Sequence[BatchRecord]) -> list[BaseException | None]:
        with self.lock:
            self.groups.append([record.index for record in group])
        return [RuntimeError(f"refused {record.index}")
                if self.fail_index and self.fail_index(record) else None for record in group]


def test_aggregator_groups_span_blocks_and_the_last_group_is_smaller() -> None:
    groups = Groups()
    job = BatchJob("agg", block_size=100, max_concurrency=4, steps=(
        BatchStep("load", aggregator=Aggregator(size=200, commit=groups.commit)),))
    result = run_instance(job, records(1050)).result
    sizes = sorted((len(group) for group in groups.groups), reverse=True)
    assert sizes == [200, 200, 200, 200, 200, 50]
    assert sorted(index for group in groups.groups for index in group) == list(range(1050))
    assert result["steps"][0]["successfulRecords"] == 1050
    assert result["successfulRecords"] == 1050


def test_aggregator_size_not_a_multiple_of_the_block_size() -> None:
    groups = Groups()
    job = BatchJob("agg-odd", block_size=30, steps=(
        BatchStep("load", aggregator=Aggregator(size=45, commit=groups.commit)),))
    run_instance(job, records(100))
    assert sorted(len(group) for group in groups.groups) == [10, 45, 45]
    assert sorted(index for group in groups.groups for index in group) == list(range(100))


def test_streaming_aggregator_gets_every_accepted_record_in_one_call() -> None:
    groups = Groups()
    job = BatchJob("stream", block_size=10, max_failed_records=-1, steps=(
        BatchStep("first", fail_odd),
        BatchStep("load", aggregator=Aggregator(streaming=True, commit=groups.commit)),))
    run_instance(job, records(95))
    assert len(groups.groups) == 1
    assert sorted(groups.groups[0]) == list(range(0, 95, 2))


def test_a_record_level_error_in_a_group_fails_that_record_only() -> None:
    groups = Groups(fail_index=lambda record: record.index in (3, 150))
    after = Seen()
    job = BatchJob("agg-errors", block_size=50, max_failed_records=-1, steps=(
        BatchStep("load", aggregator=Aggregator(size=100, commit=groups.commit)),
        BatchStep("after", after.step("after")),
        BatchStep("dead-letter", after.step("dead-letter"),
                  accept_policy=AcceptPolicy.ONLY_FAILURES),
    ))
    run = run_instance(job, records(200))
    result = run.result
    assert result["steps"][0] == {"stepName": "load", "receivedRecords": 200,
                                  "successfulRecords": 198, "failedRecords": 2}
    assert (result["failedRecords"], result["successfulRecords"]) == (2, 198)
    assert after.indexes("dead-letter") == [3, 150]
    assert len(after.indexes("after")) == 198
    csv_text = run.failures_csv()
    assert "load,RuntimeError,refused 3,3," in csv_text


def test_an_aggregator_that_raises_fails_its_group_only() -> None:
    calls = []

    def commit(group: Sequence[BatchRecord]) -> list[BaseException | None]:
        calls.append(len(group))
        if any(record.index == 0 for record in group):  # whichever group holds record 0
            raise ConnectionError("org unreachable")
        return [None] * len(group)

    job = BatchJob("agg-raise", block_size=10, max_failed_records=-1, steps=(
        BatchStep("load", aggregator=Aggregator(size=20, commit=commit)),))
    result = run_instance(job, records(60)).result
    assert (result["failedRecords"], result["successfulRecords"]) == (20, 40)
    assert result["failuresByStepAndType"] == [
        {"step": "load", "exceptionType": "ConnectionError", "count": 20}]


def test_max_concurrency_is_never_exceeded() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    def slow(_record: BatchRecord) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(0.002)
        with lock:
            running -= 1

    job = BatchJob("window", block_size=5, max_concurrency=3,
                   steps=(BatchStep("slow", slow),))
    run = run_instance(job, records(200))
    assert peak == 3
    assert run.max_in_flight == 3


def test_continue_as_new_carries_a_state_that_does_not_grow_with_records() -> None:
    job = BatchJob("generations", block_size=10, max_failed_records=-1, steps=(
        BatchStep("first", fail_odd),
        BatchStep("load", aggregator=Aggregator(size=25, commit=Groups().commit)),))
    small = run_instance(job, records(1000), blocks_per_generation=20)
    large = run_instance(job, records(20_000), blocks_per_generation=20)
    assert large.result["processedRecords"] == 20_000
    assert large.result["failedRecords"] == 10_000
    assert large.generations >= 100
    assert large.max_carried_bytes <= 1.2 * small.max_carried_bytes


def test_a_payload_that_cannot_be_stored_fails_that_record_only() -> None:
    """A step returning a value JSON cannot hold (a Decimal, a datetime) fails its record at
    that step; before, persisting the block raised, the block's activity was retried (its
    step functions called again) and the instance failed as a whole."""
    seen = Seen()

    def price(record: BatchRecord) -> dict | None:
        seen.step("price")(record)
        if record.payload["n"] == 3:
            return {"n": 3, "amount": Decimal("1.50")}
        return {"n": record.payload["n"], "amount": "1.50"}

    job = BatchJob("payloads", block_size=5, max_failed_records=-1, steps=(
        BatchStep("price", price),
        BatchStep("send", seen.step("send")),
    ))
    run = run_instance(job, records(10))
    result = run.result
    assert (result["status"], result["processedRecords"], result["successfulRecords"],
            result["failedRecords"]) == ("SUCCESSFUL", 10, 9, 1)
    assert result["failuresByStepAndType"] == [
        {"step": "price", "exceptionType": "TypeError", "count": 1}]
    assert seen.indexes("send") == [n for n in range(10) if n != 3]
    assert all(count == 1 for count in seen.calls.values())
    assert "Decimal" in run.failures_csv()


def test_failures_csv_neutralises_formulas_and_has_no_traceback() -> None:
    def refuse(record: BatchRecord) -> None:
        raise ValueError(record.payload["name"])

    job = BatchJob("csv", block_size=10, max_failed_records=-1,
                   steps=(BatchStep("check", refuse),))
    run = run_instance(job, [{"name": "=HYPERLINK(\"http://x\")"}, {"name": "@SUM(A1)"}])
    text = run.failures_csv()
    assert "'=HYPERLINK" in text and "'@SUM" in text
    assert "Traceback" not in text
    assert text.splitlines()[0] == "step,exceptionType,message,recordIndex,record"


def test_a_failure_or_payload_with_a_lone_surrogate_still_gets_its_report() -> None:
    """Text that UTF-8 cannot encode (a lone surrogate, as a path decoded with
    surrogateescape holds) in a failure's message or a payload is written escaped; before,
    the report could not be written, the finish activity failed and the instance with it.
    An exception whose message cannot be read fails its record only."""
    def rename(record: BatchRecord) -> dict | None:
        return {"name": "file-\udcff.csv"} if record.index == 1 else None

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no message")

    def refuse(record: BatchRecord) -> None:
        if record.index == 2:
            raise Unprintable()
        if record.index in (0, 1):
            name = record.payload.get("name", "x-\udc80")
            raise OSError(f"cannot open {name}")

    job = BatchJob("surrogates", block_size=10, max_failed_records=-1,
                   steps=(BatchStep("rename", rename), BatchStep("open", refuse)))
    run = run_instance(job, records(3))
    text = run.failures_csv()
    assert "x-\\udc80" in text and "file-\\udcff.csv" in text
    failures = read_record_failures(run.store, InstanceFolder("surrogates", "i1"))
    assert failures[0].message == "cannot open x-\\udc80"
    assert failures[1].exception_type == "OSError"
    assert failures[2].exception_type == "Unprintable"
    assert run.result["failedRecords"] == 3


def test_records_holding_a_nul_character_reach_the_steps_and_the_report_as_posted(
    azurite,
) -> None:
    """U+0000 in posted records (JSON's \\u0000, or raw in CSV) is stored faithfully: the
    blocks are JSON (which escapes it) in blobs on Azurite, and the failure report's
    record cell is JSON too, so nothing refuses it or cuts the text."""
    posted = parse_records(b'[{"name": "a\\u0000b", "k\\u0000": ["\\u0000"]}]',
                           "application/json")
    from_csv = parse_records(b"name\r\nc\x00d\r\n", "text/csv")
    assert isinstance(posted, list) and isinstance(from_csv, list)
    seen: list[dict] = []

    def refuse(record: BatchRecord) -> None:
        seen.append(record.payload)
        raise ValueError("refused")

    store = AzureBlobStore.in_container(
        BlobServiceClient.from_connection_string(azurite.connection_string),
        "nul-" + uuid.uuid4().hex[:10])
    job = BatchJob("nul", block_size=10, max_failed_records=-1,
                   steps=(BatchStep("refuse", refuse),))
    run = run_instance(job, posted + from_csv, store=store)  # type: ignore[arg-type]

    expected = [{"name": "a\x00b", "k\x00": ["\x00"]}, {"name": "c\x00d"}]
    assert seen == expected
    report = list(csv.DictReader(io.StringIO(run.failures_csv())))
    assert [json.loads(row["record"]) for row in report] == expected
    assert run.result["failedRecords"] == 2


def test_knob_overrides_are_applied_and_a_bad_one_is_named() -> None:
    from shared.batch.settings import job_with_overrides
    from shared.config import SettingsError

    job = BatchJob("orders-eu", steps=(BatchStep("s", keep),))
    changed = job_with_overrides(job, {"BATCH_ORDERS_EU_BLOCK_SIZE": "250",
                                       "BATCH_ORDERS_EU_SCHEDULING_STRATEGY": "ROUND_ROBIN",
                                       "BATCH_ORDERS_EU_MAX_FAILED_RECORDS": "-1"})
    assert (changed.block_size, changed.scheduling_strategy.value,
            changed.max_failed_records) == (250, "ROUND_ROBIN", -1)
    with pytest.raises(SettingsError, match="BATCH_ORDERS_EU_MAX_CONCURRENCY"):
        job_with_overrides(job, {"BATCH_ORDERS_EU_MAX_CONCURRENCY": "lots"})


def test_declarations_are_validated_when_built() -> None:
    with pytest.raises(ValueError, match="never both"):
        Aggregator(size=10, streaming=True, commit=lambda group: [None] * len(group))
    with pytest.raises(ValueError, match="max_failed_records"):
        BatchJob("bad", max_failed_records=-2, steps=(BatchStep("s", keep),))
    with pytest.raises(ValueError, match="unique"):
        BatchJob("bad", steps=(BatchStep("s", keep), BatchStep("s", keep)))


def test_declarations_that_could_only_fail_at_run_time_fail_when_built() -> None:
    """A step function, accept expression or hook that is not a function, or a knob that is
    not a whole number, fails the declaration (at start-up); before, a job whose step was
    not callable started and failed every record with a TypeError, and a block size given
    as text raised a bare TypeError."""
    with pytest.raises(ValueError, match="function"):
        BatchStep("s", "validate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="accept_expression"):
        BatchStep("s", keep, accept_expression="payload.enabled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_complete"):
        BatchJob("bad", steps=(BatchStep("s", keep),), on_complete="report")  # type: ignore[arg-type]
    for knob in ("block_size", "max_failed_records", "max_concurrency"):
        with pytest.raises(ValueError, match=knob):
            BatchJob("bad", steps=(BatchStep("s", keep),), **{knob: "10"})
        with pytest.raises(ValueError, match=knob):
            BatchJob("bad", steps=(BatchStep("s", keep),), **{knob: True})
