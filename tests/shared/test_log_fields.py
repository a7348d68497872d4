"""shared.log_fields: an event's fields ride on the record (custom dimensions) and in a
readable message."""

from __future__ import annotations

import logging

import pytest

from shared.log_fields import event_fields, log_event


def test_the_fields_are_attributes_of_the_record_and_the_message_repeats_them(caplog):
    logger = logging.getLogger("tests.log_fields")
    with caplog.at_level(logging.INFO, logger.name):
        log_event(logger, "sync run ended", level=logging.ERROR, job="asset-changes",
                  run_id="5861d6f2fef8", outcome="failed", rows=40, error=None)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == \
        "sync run ended: job=asset-changes, run_id=5861d6f2fef8, outcome=failed, rows=40"
    assert event_fields(record) == {"event": "sync run ended", "job": "asset-changes",
                                    "run_id": "5861d6f2fef8", "outcome": "failed", "rows": 40}


def test_an_event_without_fields_is_its_name(caplog):
    logger = logging.getLogger("tests.log_fields")
    with caplog.at_level(logging.INFO, logger.name):
        log_event(logger, "event drain started")
    assert caplog.records[0].getMessage() == "event drain started"


def test_a_percent_sign_in_a_value_is_not_a_format(caplog):
    logger = logging.getLogger("tests.log_fields")
    with caplog.at_level(logging.INFO, logger.name):
        log_event(logger, "sync tick", reason="100% busy %s")
    assert caplog.records[0].getMessage() == "sync tick: reason=100% busy %s"


@pytest.mark.parametrize("name", ["name", "message", "process"])
def test_a_field_may_not_shadow_a_record_attribute(name):
    with pytest.raises(ValueError, match=name):
        log_event(logging.getLogger("tests.log_fields"), "sync tick", **{name: "x"})


def test_a_plain_record_has_no_fields():
    record = logging.LogRecord("app", logging.INFO, __file__, 0, "text", None, None)
    assert event_fields(record) == {}
