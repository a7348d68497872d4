"""BULK_LOAD_* settings: defaults of seed 002 and every cross-field problem named at once."""

from __future__ import annotations

import pytest

from shared.config import SettingsError, load_settings

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_poll_at_most_every_ten_seconds_for_twelve_hours():
    settings = load_settings(STORAGE).bulk_load

    assert (settings.poll_interval, settings.max_wait) == (10.0, 12 * 3600.0)
    assert settings.upload_limit_bytes == 100_000_000
    assert settings.container == "bulk-loads"


def test_bad_bulk_load_settings_are_all_reported():
    with pytest.raises(SettingsError) as raised:
        load_settings({**STORAGE, "BULK_LOAD_POLL_INTERVAL": "00:01:00",
                       "BULK_LOAD_MAX_WAIT": "30", "BULK_LOAD_CONTAINER": "Bulk_Loads",
                       "BULK_LOAD_UPLOAD_LIMIT_BYTES": "150000000"})

    problems = " | ".join(raised.value.problems)
    assert "BULK_LOAD_MAX_WAIT is shorter than BULK_LOAD_POLL_INTERVAL" in problems
    assert "BULK_LOAD_CONTAINER is malformed" in problems
    assert "BULK_LOAD_UPLOAD_LIMIT_BYTES is above 100000000" in problems


def test_a_malformed_number_names_the_setting():
    with pytest.raises(SettingsError) as raised:
        load_settings({**STORAGE, "BULK_LOAD_MAX_BODY_BYTES": "lots"})

    assert raised.value.problems == [
        "BULK_LOAD_MAX_BODY_BYTES is malformed: expected a whole number, got 'lots'"]
