"""A sync job, described once: source, paging, mapping and masking, sink, schedule, limits.

A `JobDefinition` names a job, binds it to its settings section and builds its `SyncJob`
from the settings; its timer (function name, `%SCHEDULE_SETTING%`) derives from it. The
`SyncJob` drives the lock (max run time, min interval), the SQL (source), the page step
(mapping, masking, sink) and the status endpoint. Secrets (the source connection string,
sink credentials) are values read from settings and are kept out of `repr`, logs,
orchestration history and custom status.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from shared.config import AppSettings, SyncSettings
from shared.config.framework import setting_name
from shared.sql.dialects import TSQL, Dialect, dialect_for_connection_string, dialect_named
from shared.sql.keyset import KeysetSource, Position
from shared.sql.source import SqlSource
from shared.sync.positions import CursorCodec

_JOB_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

RecordMapping = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SourceSpec:
    connection_string: str = field(repr=False)
    relation: str
    cursor_column: str
    cursor_kind: str
    key_columns: tuple[str, ...]
    columns: tuple[str, ...]
    initial_cursor: Any
    lag: timedelta = timedelta(0)
    dialect: str | None = None  # None: from the connection string's ODBC driver
    login_timeout: int = 15
    query_timeout: int = 120

    def sql_dialect(self) -> Dialect:
        if self.dialect:
            return dialect_named(self.dialect)
        return dialect_for_connection_string(self.connection_string)

    def keyset(self) -> KeysetSource:
        return KeysetSource(
            self.sql_dialect(), self.relation, self.cursor_column, self.cursor_kind,
            tuple(self.key_columns), tuple(self.columns),
        )

    @property
    def initial_position(self) -> Position:
        return Position(self.initial_cursor, None)

    @property
    def codec(self) -> CursorCodec:
        return CursorCodec(self.cursor_kind)

    def sql_source(self) -> SqlSource:
        return SqlSource(self.connection_string, self.relation,
                         login_timeout=self.login_timeout, query_timeout=self.query_timeout)


@dataclass(frozen=True)
class HttpSinkSpec:
    url: str
    authorization: str | None = field(default=None, repr=False)
    header: str = "Authorization"
    timeout: float = 60.0
    # The fields of a message that name its record at the endpoint; none: the source's
    # key columns do (the endpoint then identifies a record as the view does).
    key_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SalesforceSinkSpec:
    sobject: str
    external_id_field: str


def mask_value(value: Any) -> Any:
    """Everything but the last 4 characters replaced by `*` (None stays None)."""
    if value is None:
        return None
    text = value if value.__class__ is str else str(value)
    if len(text) > 8:
        return "*" * (len(text) - 4) + text[-4:]
    return "*" * len(text)


@dataclass(frozen=True)
class SyncJob:
    name: str
    source: SourceSpec
    map_record: RecordMapping
    sink: HttpSinkSpec | SalesforceSinkSpec
    schedule_setting: str
    page_size: int = 500
    masked_fields: tuple[str, ...] = ()
    max_run_time: timedelta = timedelta(minutes=30)
    min_interval: timedelta = timedelta(seconds=30)
    enabled: bool = True
    pages_per_generation: int = 20
    checkpoint_pages: int = 50  # accepted pages that may wait for their checkpoint
    checkpoint_interval: float = 1.0  # least seconds between checkpoints below that
    pages_in_flight: int = 1  # pages handed to the sink at once, settled in order
    backlog_threshold: int = 0  # changed rows above which a run loads by Bulk API; 0: never
    description: str = ""
    # Key partitions a run's pages are synced in side by side (partitions.py), and the
    # setting that says so, named in the problems below.
    partitions: int = 1
    partitions_setting: str = "partitions"
    # The setting that names the source view, named where its rows need fixing (a NULL
    # key or cursor: null_rows.py).
    view_setting: str = "view"
    # The mapping derives the key the sink writes a record by (external id, key fields)
    # from the source's key alone, one source key one sink key: records that partitions
    # write side by side are then never one record at the target.
    sink_key_follows_source_key: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not _JOB_NAME.fullmatch(self.name):
            problems.append(
                f"job name {self.name!r} must be lower-case letters, digits and -, "
                "at most 63 characters"
            )
        if self.page_size <= 0:
            problems.append("page_size must be above 0")
        if self.pages_per_generation <= 0:
            problems.append("pages_per_generation must be above 0")
        if self.checkpoint_pages <= 0:
            problems.append("checkpoint_pages must be above 0")
        if self.pages_in_flight <= 0:
            problems.append("pages_in_flight must be above 0")
        if self.min_interval > self.max_run_time:
            problems.append(
                f"min interval ({self.min_interval}) must not exceed max run time "
                f"({self.max_run_time}), as lockAtLeastFor <= lockAtMostFor"
            )
        problems += self._partition_problems()
        unknown = set(self.masked_fields) - set(self.source.columns)
        if unknown:
            problems.append(f"masked fields {sorted(unknown)} are not selected columns")
        if problems:
            raise ValueError(f"sync job {self.name!r}: " + "; ".join(problems))
        if self.source.connection_string or self.source.dialect:
            self.source.keyset()  # validates identifiers, cursor kind and dialect now
        else:
            # Not configured yet (a disabled job): the identifiers are still checked.
            KeysetSource(
                TSQL, self.source.relation, self.source.cursor_column, self.source.cursor_kind,
                tuple(self.source.key_columns), tuple(self.source.columns),
            )

    def _partition_problems(self) -> list[str]:
        if self.partitions == 1:
            return []
        name = f"{self.partitions_setting} ({self.partitions})"
        if not 1 <= self.partitions <= 16:
            return [f"{name} must be 1 to 16"]
        if len(self.source.key_columns) != 1:
            return [f"{name}: rows are partitioned by one integer key column, and the key "
                    f"is {', '.join(self.source.key_columns)}: set it to 1"]
        if self.sink_key_reader() is not None and not self.sink_key_follows_source_key:
            # Two partitions could else write one record side by side, in no order.
            return [f"{name}: the sink writes records by a key the mapping may give two "
                    "source keys (two partitions could write one record in any order): "
                    "set it to 1"]
        return []

    @property
    def instance_id(self) -> str:
        return f"sync-{self.name}"

    def mask(self, row: Mapping[str, Any]) -> dict[str, Any]:
        masked = dict(row)
        for name in self.masked_fields:
            if name in masked:
                masked[name] = mask_value(masked[name])
        return masked

    def row_masker(self, names: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """A row as the driver gives it (values in `names` order) -> its masked dict: what
        `mask(dict(zip(names, values)))` gives. Built once per query's columns, so that a
        row costs one dict and one call per masked column, and nothing more when no
        selected column is masked."""
        # `names` are the query's columns: every row the driver gives has as many values.
        names = tuple(names)
        masked = [(index, name) for index, name in enumerate(names)
                  if name in self.masked_fields]
        if not masked:
            return lambda values: dict(zip(names, values, strict=False))
        if len(masked) == 1:
            [(index, name)] = masked

            def mask_one(values: Sequence[Any]) -> dict[str, Any]:
                row = dict(zip(names, values, strict=False))
                value = values[index]
                if value is not None:
                    row[name] = mask_value(value)
                return row

            return mask_one

        def mask_each(values: Sequence[Any]) -> dict[str, Any]:
            row = dict(zip(names, values, strict=False))
            for index, name in masked:
                row[name] = mask_value(values[index])
            return row

        return mask_each

    def sink_key_reader(self) -> Callable[[Mapping[str, Any]], Hashable] | None:
        """A mapped record -> the key the sink writes it by (None: it names no record
        and is refused on its own), or None when the sink writes by the source's key
        columns. Pages in flight are compared by these keys: two source keys the mapping
        gives one external id are one record for the target."""
        if isinstance(self.sink, SalesforceSinkSpec):
            return partial(_external_id_key, self.sink.external_id_field)
        fields = self.sink.key_fields
        if not fields:
            return None
        if len(fields) == 1:
            return partial(_field_key, fields[0])
        return lambda record: tuple(_field_key(name, record) for name in fields)

    def record_key(self, row: Mapping[str, Any]) -> str:
        return "/".join(str(row[column]) for column in self.source.key_columns)


def _external_id_key(name: str, record: Mapping[str, Any]) -> str | None:
    # As Salesforce compares external ids by default (and `calls_in_rounds` does): as
    # text, ignoring case.
    value = record.get(name)
    return None if value is None else str(value).casefold()


def _field_key(name: str, record: Mapping[str, Any]) -> Hashable:
    value = record.get(name)
    return value if value is None or isinstance(value, Hashable) else repr(value)


@dataclass(frozen=True)
class JobDefinition:
    """A sync job of the app: its name, the `AppSettings` field of its settings section,
    and how its `SyncJob` is described from that section and the common sync settings.

    Its schedule setting is the section's `schedule` field; its timer function is
    `sync_tick_<name>`; its lock is the instance `sync-<name>`.
    """

    name: str
    section: str
    describe: Callable[[JobDefinition, Any, SyncSettings], SyncJob]

    @property
    def schedule_setting(self) -> str:
        return setting_name(typing.get_type_hints(AppSettings)[self.section], "schedule")

    @property
    def timer_function(self) -> str:
        return f"sync_tick_{self.name.replace('-', '_')}"

    def build(self, settings: AppSettings) -> SyncJob:
        return self.describe(self, getattr(settings, self.section), settings.sync)
