"""The operations alerts and workbook (infra/modules/alerts.bicep, workbook.bicep): each
alert rule exists with its query and threshold, the thresholds are parameters of
main.bicep, and the log lines the queries parse are still what the app writes."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

import pytest
import tree_sitter

from shared.sql.keyset import Position
from shared.sync.positions import CursorCodec
from tests.infra.bicep_source import (
    INFRA,
    MAIN,
    REPO_ROOT,
    DeclaredResource,
    declared_resources,
    module_params,
    object_entries,
    parameter_names,
    property_path,
    string_value,
    text,
    variable_value,
)

ALERTS = INFRA / "modules" / "alerts.bicep"
WORKBOOK = INFRA / "modules" / "workbook.bicep"
README = INFRA / "README.md"


@dataclass(frozen=True)
class ExpectedRule:
    symbol: str
    threshold: str  # a parameter of alerts.bicep, or a literal
    measure: str | None  # the query's column the threshold applies to (None: row count)
    query_has: tuple[str, ...]  # what the query must look for
    logged_by: dict[str, tuple[str, ...]]  # source file -> text of the log call it parses


RULES = [
    ExpectedRule(
        "syncRunFailed", "0", None,
        ('severityLevel >= 3', '"sync job "', "exceeded the max run time"),
        {"shared/sync/run.py": ('log.error("sync job %s: run %s %s: %s"',),
         "shared/sync/lock.py": ('exceeded the "', '"max run time of'),
         "shared/sync/starter.py": ("outside the run; recorded it",)},
    ),
    ExpectedRule(
        "deadLettersGrowing", "deadLetterAlertCount", "deadLettered",
        ('" dead-lettered, now at "', "sum(deadLettered)"),
        {"shared/sync/pages.py": (
            '"sync job %s: run %s page of %d rows, %d delivered, %d dead-lettered, now at %s"',)},
    ),
    ExpectedRule(
        "syncLagHigh", "syncLagAlertMinutes", "lagMinutes",
        ("now at {'cursor': '", "datetime_diff('minute', timestamp, cursorTime)"),
        {"shared/sync/pages.py": ("dead-lettered, now at %s",
                                  "stored_position(self.watermark.position).to_json()"),
         "shared/sync/positions.py": ("cursor: str | None",)},
    ),
    ExpectedRule(
        "lockStuck", "skippedTicksAlertCount", "skippedSinceLastStart",
        ('"tick skipped"', '": started run "', "skippedAt > lastStart"),
        {"shared/sync/starter.py": ('"sync job %s: started run %s (instance %s)"',
                                    'log.info("sync job %s: %s", job.name, decision.reason)'),
         "shared/sync/lock.py": ("tick skipped",)},
    ),
    ExpectedRule(
        "bulkLoadFailedOrStalled", "0", None,
        ('"Host.Triggers.DurableTask"', '== "bulk_load"', '"stalled"', '"failed"'),
        {"orchestrators/bulk_load/orchestration.py": ('ORCHESTRATOR = "bulk_load"',)},
    ),
    ExpectedRule(
        "batchFailedRecords", "0", None,
        ('"ended FAILED_PROCESS_RECORDS"',),
        {},  # batch jobs are not in the app yet: their on-complete line must say "ended <STATUS>"
    ),
]


def _rules() -> dict[str, DeclaredResource]:
    return {r.symbol: r for r in declared_resources()
            if r.type == "Microsoft.Insights/scheduledQueryRules"}


def _value(node: tree_sitter.Node) -> str:
    literal = string_value(node)
    return text(node) if literal is None else literal


def _criterion(rule: DeclaredResource) -> dict[str, tree_sitter.Node]:
    assert rule.body is not None
    criteria = property_path(rule.body, "properties", "criteria", "allOf").named_children
    assert len(criteria) == 1, f"{rule.symbol}: one criterion expected"
    return object_entries(criteria[0])


def _query_text(rule: DeclaredResource, criterion: dict[str, tree_sitter.Node]) -> str:
    node = criterion["query"]
    assert node.type == "identifier", f"{rule.symbol}: the query is a named variable"
    return text(variable_value(rule.file, text(node)))


def test_every_expected_rule_and_nothing_else():
    assert set(_rules()) == {rule.symbol for rule in RULES}


@pytest.mark.parametrize("expected", RULES, ids=lambda rule: rule.symbol)
def test_rule_queries_the_app_logs_and_compares_with_its_threshold(expected: ExpectedRule):
    rule = _rules()[expected.symbol]
    assert rule.file == ALERTS
    criterion = _criterion(rule)
    query = _query_text(rule, criterion)
    for fragment in expected.query_has:
        assert fragment in query, f"{expected.symbol}: the query lost {fragment!r}"
    assert _value(criterion["threshold"]) == expected.threshold
    if expected.measure is None:
        assert _value(criterion["timeAggregation"]) == "Count"
        assert "metricMeasureColumn" not in criterion
    else:
        assert _value(criterion["metricMeasureColumn"]) == expected.measure
        assert re.search(rf"\b{expected.measure}\b\s*=", query), \
            f"{expected.symbol}: the query computes no column {expected.measure}"
    assert rule.body is not None
    scopes = property_path(rule.body, "properties", "scopes").named_children
    assert [text(scope) for scope in scopes] == ["applicationInsightsId"]
    groups = property_path(rule.body, "properties", "actions", "actionGroups").named_children
    assert [text(group) for group in groups] == ["actionGroup.id"]
    assert _value(property_path(rule.body, "properties", "enabled")) == "true"


@pytest.mark.parametrize("expected", RULES, ids=lambda rule: rule.symbol)
def test_the_log_lines_a_rule_parses_are_still_written_by_the_app(expected: ExpectedRule):
    for path, fragments in expected.logged_by.items():
        source = (REPO_ROOT / path).read_text()
        for fragment in fragments:
            assert fragment in source, (
                f"{path} no longer logs {fragment!r}: rewrite the query of alert "
                f"{expected.symbol} (infra/modules/alerts.bicep) on what it logs now"
            )


def test_threshold_parameters_come_from_main_with_defaults_and_documentation():
    passed = module_params(MAIN, "alerts")
    readme = README.read_text()
    optional = parameter_names(MAIN) - parameter_names(MAIN, required_only=True)
    names = {rule.threshold for rule in RULES if not rule.threshold.isdigit()} | {"alertEmail"}
    for name in names:
        assert name in parameter_names(ALERTS), f"alerts.bicep has no parameter {name}"
        assert text(passed[name]) == name, f"main.bicep passes {text(passed[name])} as {name}"
        assert name in optional, f"main.bicep parameter {name} needs a default"
        assert f"| `{name}` |" in readme, f"infra/README.md's parameter table lacks {name}"


def test_the_action_group_mails_the_alert_address_when_one_is_given():
    group = next(r for r in declared_resources()
                 if r.type == "Microsoft.Insights/actionGroups")
    assert group.body is not None
    receivers = text(property_path(group.body, "properties", "emailReceivers"))
    assert receivers.startswith("empty(alertEmail) ? [] :")
    assert "emailAddress: alertEmail" in receivers


def test_the_workbook_shows_the_console_charts_on_application_insights():
    workbook = next(r for r in declared_resources() if r.type == "Microsoft.Insights/workbooks")
    assert workbook.file == WORKBOOK and workbook.body is not None
    assert text(property_path(workbook.body, "properties", "sourceId")) == "applicationInsightsId"
    assert text(property_path(workbook.body, "properties", "serializedData")) == \
        "string(content)"
    sections = {
        string_value(object_entries(item)["name"]): object_entries(item)
        for item in variable_value(WORKBOOK, "sections").named_children
        if item.type == "object"
    }
    assert {"rows-per-run", "lag-per-page", "run-outcomes", "skipped-ticks", "dead-letters",
            "bulk-loads", "batch-instances"} <= set(sections)
    for name, section in sections.items():
        query = text(variable_value(WORKBOOK, text(section["query"])))
        assert query.strip().startswith("'''\ntraces"), f"{name}: not a query of traces"
    assert text(module_params(MAIN, "workbook")["applicationInsightsId"]) == \
        "monitoring.outputs.applicationInsightsId"


def test_every_parameter_of_main_is_in_the_readme_table():
    readme = README.read_text()
    missing = sorted(name for name in parameter_names(MAIN) if f"| `{name}` |" not in readme)
    assert not missing, f"infra/README.md's parameter table lacks {missing}"


# -- the parse patterns against lines formatted as the app formats them ----------------------


def logged(message: str, *args: object) -> str:
    """The text a log call `log.info(message, *args)` sends to Application Insights."""
    return logging.LogRecord("app", logging.INFO, __file__, 0, message, args, None).getMessage()


PAGE_LINE = logged(
    "sync job %s: run %s page of %d rows, %d delivered, %d dead-lettered, now at %s",
    "asset-changes", "5861d6f2fef8", 25, 23, 2,
    CursorCodec("timestamp").stored_position(
        Position(datetime(2026, 3, 1, 10, 0, 0, 123000), ("125",))).to_json())
SUCCEEDED_LINE = logged("sync job %s: run %s succeeded: %s", "asset-changes", "5861d6f2fef8",
                        {"pages": 2, "rows": 40, "delivered": 38, "dead_lettered": 2})
FAILED_LINE = logged("sync job %s: run %s %s: %s", "asset-changes", "5861d6f2fef8", "failed",
                     "sync job 'asset-changes': page failed: boom")
SKIPPED_LINE = logged("sync job %s: %s", "asset-changes",
                      "previous run 5861d6f2fef8 still running (Running), tick skipped")
BATCH_LINE = logged("batch contacts %s ended %s: %s of %s records successful, %s failed",
                    "b-42", "FAILED_PROCESS_RECORDS", 90, 100, 10)

PARSED = [
    (ALERTS, "deadLetterQuery", PAGE_LINE,
     {"job": "asset-changes", "rows": 25, "delivered": 23, "deadLettered": 2}),
    (ALERTS, "syncLagQuery", PAGE_LINE,
     {"job": "asset-changes", "cursor": "2026-03-01T10:00:00.123000"}),
    (ALERTS, "failedSyncRunQuery", FAILED_LINE, {"job": "asset-changes"}),
    (ALERTS, "skippedTicksQuery", SKIPPED_LINE, {"job": "asset-changes"}),
    (ALERTS, "batchFailedQuery", BATCH_LINE, {"job": "contacts", "instanceId": "b-42"}),
    (WORKBOOK, "rowsPerRunQuery", SUCCEEDED_LINE, {"job": "asset-changes", "rows": 40}),
    (WORKBOOK, "runOutcomesQuery", FAILED_LINE, {"outcome": "failed"}),
    (WORKBOOK, "runOutcomesQuery", SUCCEEDED_LINE, {"outcome": "succeeded"}),
    (WORKBOOK, "batchInstancesQuery", BATCH_LINE, {"status": "FAILED_PROCESS_RECORDS"}),
]


def _parse_with(pattern: str, line: str) -> dict[str, object] | None:
    """Kusto's `parse ... with` in its default (simple) mode: literals match as they are,
    each column takes the text up to the next literal (the last one, the rest), `:long`
    columns must be whole numbers."""
    tokens = re.findall(r'"((?:[^"\\]|\\.)*)"|(\*)|(\w+)(?::(\w+))?', pattern)
    regex, columns = "", []
    for index, (literal, star, name, kind) in enumerate(tokens):
        last = index == len(tokens) - 1
        if literal or (not star and not name):
            regex += re.escape(literal)
        else:
            group = "(.*)" if last else "(.*?)"
            regex += group
            columns.append((name, kind) if name else None)
    match = re.match(regex + "$", line, re.DOTALL)
    if match is None:
        return None
    values: dict[str, object] = {}
    for column, value in zip(columns, match.groups(), strict=True):
        if column is None:
            continue
        name, kind = column
        values[name] = int(value) if kind == "long" else value
    return values


@pytest.mark.parametrize(("file", "query", "line", "expected"), PARSED,
                         ids=[f"{query}-{index}" for index, (_, query, _, _) in
                              enumerate(PARSED)])
def test_the_parse_patterns_split_the_app_log_lines(file, query, line, expected):
    source = text(variable_value(file, query))
    clause = re.search(r"\| parse message with (.+)", source)
    assert clause, f"{query} has no parse clause"
    values = _parse_with(clause.group(1), line)
    assert values is not None, f"{query} does not parse {line!r}"
    assert {name: values[name] for name in expected} == expected
