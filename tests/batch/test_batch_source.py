"""A job's declared SQL source as an instance's input (shared/batch/source.py): parameters
checked and bound, never SQL text from the caller; rows read a block at a time and staged
all or nothing, on SQLite and PostgreSQL through ODBC."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, timedelta

import pytest
import sqlglot

from shared.batch.job import BatchJob, BatchStep
from shared.batch.loading import Manifest, stage_blocks
from shared.batch.settings import job_with_overrides
from shared.batch.source import (
    BatchSource,
    InvalidParams,
    SourceFilter,
    bound_params,
    read_source_blocks,
    select_statement,
    source_request_params,
    streaming_connection_string,
)
from shared.batch.store import InstanceFolder, MemoryBlobStore
from shared.config.framework import SettingsError
from shared.sql.identifiers import InvalidIdentifier
from shared.sql.source import SourceError
from tests.sync.sources import BASE, AssetSource

COLUMNS = ("Asset_ID", "Status", "Price", "Install_Date", "ChangeTimestamp")
FILTERS = (SourceFilter("Status", "status"),
           SourceFilter("ChangeTimestamp", "since", ">=", kind="timestamp", required=False),
           SourceFilter("Asset_ID", "maxId", "<=", kind="integer", required=False))


def declared(relation: str = "dbo.Assets_V", dialect: str | None = "tsql",
             connection: str = "") -> BatchSource:
    return BatchSource(relation, COLUMNS, ("Asset_ID",), "ASSETS_CONNECTION", FILTERS,
                       dialect=dialect, connection_string=connection)


def test_the_statement_quotes_declared_names_and_binds_every_value() -> None:
    source = declared()
    values = bound_params(source, {"status": "x'; DROP TABLE t; --",
                                   "since": "2025-01-01T00:00:00"})
    statement = select_statement(source, values)
    assert statement.sql == (
        "SELECT [Asset_ID], [Status], [Price], [Install_Date], [ChangeTimestamp] "
        "FROM [dbo].[Assets_V] WHERE [Status] = ? AND [ChangeTimestamp] >= ? "
        "ORDER BY [Asset_ID]")
    assert statement.params == ("x'; DROP TABLE t; --", datetime(2025, 1, 1))
    sqlglot.parse_one(statement.sql, read="tsql")  # T-SQL that SQL Server would accept
    sqlite = select_statement(declared("assets_v", "sqlite"),
                              {"status": "Retired", "since": datetime(2025, 1, 1, 0, 0, 1)})
    assert sqlite.sql.startswith('SELECT "Asset_ID", "Status"')
    assert sqlite.params == ("Retired", "2025-01-01 00:00:01.000")


def test_parameters_that_do_not_fit_the_filters_are_each_named() -> None:
    with pytest.raises(InvalidParams) as refused:
        bound_params(declared(), {"since": "yesterday", "maxId": True, "sql": "SELECT 1"})
    assert len(refused.value.problems) == 4
    text = " | ".join(refused.value.problems)
    for name in ("'sql'", "'status'", "'since'", "'maxId'"):
        assert name in text
    assert bound_params(declared(), {"status": "Retired", "maxId": None}) == {
        "status": "Retired"}


def test_values_the_database_driver_cannot_bind_are_refused_as_parameters() -> None:
    """Lone surrogates, integers beyond 64 bits and NaN or infinite numbers parse as JSON
    but the ODBC driver cannot bind them: before, the POST answered 500 with no body."""
    price = dataclasses.replace(declared(), filters=(
        *FILTERS, SourceFilter("Price", "minPrice", ">=", kind="number", required=False)))
    for params in ({"status": "\ud800"}, {"status": "Retired\x00 or not"},
                   {"status": "ok", "maxId": 2**63},
                   {"status": "ok", "maxId": -(2**63) - 1}, {"status": "ok", "minPrice": math.nan},
                   {"status": "ok", "minPrice": math.inf}, {"status": "ok", "minPrice": 10**400}):
        with pytest.raises(InvalidParams) as refused:
            bound_params(price, params)
        assert len(refused.value.problems) == 1, params
    bound = bound_params(price, {"status": "ok", "maxId": 2**63 - 1, "minPrice": 10**20})
    assert bound == {"status": "ok", "maxId": 2**63 - 1, "minPrice": 1e20}
    assert isinstance(bound["minPrice"], float)  # a whole number past 64 bits binds as one


def test_a_source_request_is_an_object_with_params_only() -> None:
    assert source_request_params(b'{"source": {"params": {"status": "a"}}}') == {"status": "a"}
    assert source_request_params(b'{"source": {}}') == {}
    for body in (b'{"source": {"sql": "SELECT 1"}}', b'{"source": 1}', b'{"records": []}',
                 b'{"source": {"params": []}}', b"{"):
        with pytest.raises(ValueError):
            source_request_params(body)


def test_declared_names_are_checked_when_the_job_is_built() -> None:
    with pytest.raises(InvalidIdentifier):
        dataclasses.replace(declared(), relation="assets; DROP TABLE x")
    with pytest.raises(InvalidIdentifier):
        SourceFilter("Status or 1=1", "status")
    with pytest.raises(ValueError):
        SourceFilter("Status", "status", operator="LIKE")


def test_psqlodbc_is_asked_not_to_buffer_the_whole_result() -> None:
    source = declared(dialect="postgresql", connection="Driver={PostgreSQL Unicode};Server=h")
    assert streaming_connection_string(source).endswith(";UseDeclareFetch=1")
    kept = dataclasses.replace(source, connection_string="Driver={X};usedeclarefetch=0")
    assert streaming_connection_string(kept) == "Driver={X};usedeclarefetch=0"


@pytest.fixture(params=["sqlite", "postgres"])
def assets(request) -> AssetSource:
    return request.getfixturevalue(f"{request.param}_assets")


def _seed(assets: AssetSource, count: int = 25, retired_every: int = 3) -> list[int]:
    assets.insert((asset_id, BASE + timedelta(seconds=asset_id))
                  for asset_id in range(1, count + 1))
    retired = [asset_id for asset_id in range(1, count + 1) if asset_id % retired_every == 0]
    for asset_id in retired:
        assets.touch(asset_id, BASE + timedelta(seconds=asset_id), "Retired")
    return retired


def _source(assets: AssetSource) -> BatchSource:
    return declared(assets.view, assets.dialect, assets.connection_string)


def test_rows_are_read_a_block_at_a_time_as_json_records(assets) -> None:
    retired = _seed(assets, count=40)
    blocks = list(read_source_blocks(_source(assets), {"status": "Retired"}, block_size=5))
    assert [len(block) for block in blocks] == [5, 5, 3]
    rows = [row for block in blocks for row in block]
    assert [row["Asset_ID"] for row in rows] == retired
    first = rows[0]
    assert first["Status"] == "Retired"
    assert first["Price"] in ("10.50", 10.5)  # NUMERIC as exact text (SQLite keeps a REAL)
    assert date.fromisoformat(first["Install_Date"]) == date(2024, 1, 2)
    assert datetime.fromisoformat(first["ChangeTimestamp"]) == BASE + timedelta(seconds=3)
    since = bound_params(_source(assets), {"status": "Retired", "maxId": 20,
                                           "since": (BASE + timedelta(seconds=7)).isoformat()})
    chosen = [row["Asset_ID"] for block in read_source_blocks(_source(assets), since, 100)
              for row in block]
    assert chosen == [9, 12, 15, 18]


def test_staging_writes_each_block_before_reading_the_next(assets) -> None:
    _seed(assets, count=30, retired_every=1)
    store, folder = MemoryBlobStore.empty(), InstanceFolder("from-view", "i1")
    written_before_each_read: list[int] = []

    def observed():
        for block in read_source_blocks(_source(assets), {"status": "Retired"}, 10):
            written_before_each_read.append(len(list(store.names(folder.states_prefix))))
            yield block

    manifest = stage_blocks(store, folder, observed(), 10)
    assert written_before_each_read == [0, 1, 2]
    assert manifest == Manifest("from-view", "i1", 30, 10, 3)


def test_a_source_failing_half_way_leaves_nothing_staged(assets) -> None:
    _seed(assets, count=30, retired_every=1)
    store, folder = MemoryBlobStore.empty(), InstanceFolder("from-view", "i1")

    def failing():
        for number, block in enumerate(read_source_blocks(_source(assets),
                                                          {"status": "Retired"}, 10)):
            if number == 2:
                raise SourceError("SOURCE_QUERY_FAILED", "connection reset")
            yield block

    with pytest.raises(SourceError):
        stage_blocks(store, folder, failing(), 10)
    assert list(store.names("")) == []


def test_a_missing_view_is_a_source_error(assets) -> None:
    source = dataclasses.replace(_source(assets), relation="no_such_view")
    with pytest.raises(SourceError) as failed:
        list(read_source_blocks(source, {"status": "Retired"}, 10))
    assert failed.value.code == "SOURCE_RELATION_MISSING"


# -- on the local host -----------------------------------------------------------------


def _post_source(batch, params: dict, **query: str):
    body = json.dumps({"source": {"params": params}}).encode()
    return batch.post("from-view", body, **query)


def test_an_instance_reads_its_records_from_the_declared_view(start_batch_host,
                                                              assets) -> None:
    retired = _seed(assets, count=45)
    batch = start_batch_host(BATCH_TEST_SOURCE_VIEW=assets.view,
                             BATCH_TEST_SOURCE_CONNECTION=assets.connection_string)
    answer = _post_source(batch, {"status": "Retired"}, instanceId="v1")
    assert answer.status_code == 202, answer.text
    assert answer.json()["totalRecords"] == len(retired)
    result = batch.wait_for_end("from-view", "v1")
    assert (result["status"], result["processedRecords"]) == ("SUCCESSFUL", len(retired))
    lines = sorted((line.split("|") for line in (batch.log_dir / "rows.log").read_text()
                    .splitlines()), key=lambda parts: int(parts[1]))
    assert [(int(index), int(asset_id)) for _, index, asset_id, *_ in lines] == list(
        enumerate(retired))
    assert {status for _, _, _, status, *_ in lines} == {"Retired"}

    again = _post_source(batch, {"status": "Installed"}, instanceId="v1")
    assert (again.status_code, again.json()["code"]) == (409, "INSTANCE_ID_CONFLICT")
    if assets.dialect == "postgresql":
        return  # the refusals below do not depend on the database
    bad = _post_source(batch, {"status": 3, "where": "1=1"}, instanceId="v2")
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_SOURCE_PARAMS")
    assert len(bad.json()["errors"]) == 2
    unbindable = batch.post("from-view", b'{"source": {"params": {"status": "\\ud800", '
                            b'"maxId": 100000000000000000000000}}}', instanceId="v2")
    assert (unbindable.status_code, unbindable.json()["code"]) == (400, "INVALID_SOURCE_PARAMS")
    assert len(unbindable.json()["errors"]) == 2
    # Both ODBC drivers cut bound text at a NUL: 'Retired\0x' would select the Retired rows.
    cut = batch.post("from-view", b'{"source": {"params": {"status": "Retired\\u0000x"}}}',
                     instanceId="v2")
    assert (cut.status_code, cut.json()["code"]) == (400, "INVALID_SOURCE_PARAMS")
    assert [error["message"] for error in cut.json()["errors"]] == [
        "parameter 'status': holds a NUL character (U+0000), which the database driver "
        "cuts the text at"]
    none = _post_source(batch, {"status": "Scrapped"}, instanceId="v3")
    assert (none.status_code, none.json()["code"]) == (400, "NO_RECORDS")
    assert not [name for name in batch.blob_names() if "/v2" in name or "/v3" in name]
    # Nothing kept the refused ids: the corrected request goes through under them.
    assert _post_source(batch, {"status": "Retired", "maxId": 9},
                        instanceId="v3").status_code == 202
    assert batch.wait_for_end("from-view", "v3")["processedRecords"] == 3
    records_job = batch.post("window", b'{"source": {}}', instanceId="v4")
    assert (records_job.status_code, records_job.json()["code"]) == (400, "NO_SOURCE")


def test_the_connection_setting_is_read_and_checked_at_start_up() -> None:
    job = BatchJob("from-view", steps=(BatchStep("a", lambda record: None),),
                   source=declared(dialect=None))
    with pytest.raises(SettingsError, match="ASSETS_CONNECTION is missing"):
        job_with_overrides(job, {})
    with pytest.raises(SettingsError, match="ASSETS_CONNECTION: cannot tell the SQL dialect"):
        job_with_overrides(job, {"ASSETS_CONNECTION": "Driver={Unknown};Server=x"})
    ready = job_with_overrides(job, {"ASSETS_CONNECTION": "Driver={SQLite3};Database=x.db"})
    assert ready.source is not None and ready.source.sql_dialect().name == "sqlite"
    assert "Database=x.db" not in repr(ready)  # connection strings carry passwords
