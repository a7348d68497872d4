"""Log lines with fields: an operations event (a run, load, batch instance or drain step) is
logged once, its ids and counts attached as fields that Application Insights stores as
`customDimensions.<field>`, so KQL filters on fields, never on message text.

The fields ride in the record's `extra`, the way OpenTelemetry's logging bridge (the
azure-monitor-opentelemetry distro an app with `"telemetryMode": "OpenTelemetry"` uses)
turns a record's own attributes into log attributes, i.e. custom dimensions. The event's
name is a field too (`event`), and the message repeats the fields as `key=value` so that a
console or a plain trace stays readable.
"""

from __future__ import annotations

import logging

FieldValue = str | int | float | bool | None

# A field may not shadow what every LogRecord already carries (logging refuses some of
# these, and silently overwrites none of them: better to fail where the call is written).
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO,
              exc_info: BaseException | None = None, **fields: FieldValue) -> None:
    """Log `event` with its fields (None fields are left out) and, with `exc_info`, that
    exception's traceback."""
    present = {name: value for name, value in fields.items() if value is not None}
    clashes = sorted(set(present) & _RECORD_ATTRIBUTES)
    if clashes:
        raise ValueError(f"log field names {clashes} are attributes of every log record")
    rendered = ", ".join(f"{name}={value}" for name, value in present.items())
    logger.log(level, "%s: %s" if rendered else "%s", event, *([rendered] if rendered else []),
               exc_info=exc_info, extra={"event": event, **present})


def event_fields(record: logging.LogRecord) -> dict[str, FieldValue]:
    """The fields `log_event` attached to `record` (for tests and local handlers)."""
    if not hasattr(record, "event"):
        return {}
    return {name: value for name, value in record.__dict__.items()
            if name not in _RECORD_ATTRIBUTES}
