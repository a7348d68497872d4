"""The operations alerts and workbook (infra/modules/alerts.bicep, workbook.bicep): each
alert rule exists with its query and threshold, the thresholds are parameters of
main.bicep, and the log event fields the queries read are what the app logs (every
`log_event` call of the app, read from its source; tests/shared/test_log_fields.py shows
that a call's keywords become the record's fields, i.e. custom dimensions)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import tree_sitter

from shared.batch.plan import BatchStatus
from shared.sync.lock import TickAction
from shared.sync.messages import RunOutcome
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


RULES = [
    ExpectedRule(
        "syncRunFailed", "0", None,
        ('event == "sync run ended"', 'customDimensions.outcome) != "succeeded"',
         'event == "sync tick"', 'customDimensions.action) == "terminated"'),
    ),
    ExpectedRule(
        "deadLettersGrowing", "deadLetterAlertCount", "deadLettered",
        ('== "sync checkpoint"', "tolong(customDimensions.dead_lettered)",
         "sum(deadLettered)"),
    ),
    ExpectedRule(
        "syncLagHigh", "syncLagAlertMinutes", "lagMinutes",
        ('== "sync checkpoint"', 'customDimensions.cursor_kind) == "timestamp"',
         "datetime_diff('minute', timestamp, cursorTime)"),
    ),
    ExpectedRule(
        "lockStuck", "skippedTicksAlertCount", "skippedSinceLastStart",
        ('== "sync tick"', 'action in ("started", "skipped_busy", "skipped_held")',
         "skippedAt > lastStart"),
    ),
    ExpectedRule(
        "bulkLoadFailedOrStalled", "0", None,
        ('event == "bulk load started"', 'event == "bulk load ended"',
         'tostring(customDimensions.load_id)', 'outcome == "failed"',
         "started < ago(__STALL_MINUTES__m)", '"stalled"', '"failed"'),
    ),
    ExpectedRule(
        "batchFailedRecords", "0", None,
        ('== "batch instance ended"', 'customDimensions.status) == "FAILED_PROCESS_RECORDS"',
         '== "batch instance settled"', 'customDimensions.status) == "FAILED"'),
    ),
    ExpectedRule(
        "httpRequestFailed", "0", None,
        ('== "http request failed"', "operation = tostring(customDimensions.operation)",
         "code = tostring(customDimensions.code)", "tolong(customDimensions.status)"),
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


def test_failed_http_requests_alert_once_per_operation_and_code():
    criterion = _criterion(_rules()["httpRequestFailed"])
    dimensions = [_value(object_entries(item)["name"])
                  for item in criterion["dimensions"].named_children]
    assert dimensions == ["operation", "code"]
    assert "| HTTP request failed | an `http request failed` event" in README.read_text()


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


# -- the fields the queries read against the fields the app logs -----------------------------


def _logged_events() -> dict[str, set[str]]:
    """Each event name the app passes to `log_event`, with the fields its calls attach."""
    events: dict[str, set[str]] = {}
    for path in REPO_ROOT.glob("*/**/*.py"):
        if path.parts[len(REPO_ROOT.parts)] in {"tests", ".venv", ".venv-tools",
                                                "node_modules"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "log_event"):
                continue
            event = node.args[1]
            assert isinstance(event, ast.Constant) and isinstance(event.value, str), \
                f"{path}:{node.lineno}: log_event names its event with a literal"
            fields = events.setdefault(event.value, {"event"})
            fields.update(keyword.arg for keyword in node.keywords
                          if keyword.arg not in (None, "level", "exc_info"))
    return events


def _queries() -> list[tuple[Path, str, str]]:
    """(file, variable, query) of every query of the alerts and the workbook."""
    return [(file, name, text(variable_value(file, name)))
            for file in (ALERTS, WORKBOOK)
            for name in re.findall(r"^var (\w+Query) =", file.read_text(), re.MULTILINE)]


def _app_event_queries() -> list[tuple[Path, str, str]]:
    return [query for query in _queries() if "customDimensions.event" in query[2]]


def test_every_query_reads_app_event_fields_or_durable_tracking_traces():
    assert len(_queries()) >= 10
    for file, name, query in _queries():
        assert "customDimensions.event" in query or \
            'customDimensions.Category == "Host.Triggers.DurableTask"' in query, \
            f"{file.name} {name} reads neither log event fields nor Durable tracking traces"


@pytest.mark.parametrize(("file", "name", "query"), _app_event_queries(),
                         ids=lambda value: value if isinstance(value, str)
                         and value.endswith("Query") else "")
def test_a_query_reads_only_fields_the_app_logs_on_the_events_it_names(
        file: Path, name: str, query: str) -> None:
    assert "parse message" not in query, f"{name} parses message text"
    logged = _logged_events()
    named = set(re.findall(r'(?:event|customDimensions\.event\)) == "([^"]+)"', query))
    assert named, f"{name} filters on no customDimensions.event"
    unknown = named - set(logged)
    assert not unknown, f"{name} reads events {unknown} that no log_event call logs"
    fields = set(re.findall(r"customDimensions\.(\w+)", query))
    offered = set().union(*(logged[event] for event in named))
    assert fields <= offered, (
        f"{name} ({file.name}) reads {sorted(fields - offered)}, which no log_event call of "
        f"{sorted(named)} attaches: rewrite the query on what the app logs now")


def test_the_values_the_queries_compare_with_are_the_app_values():
    values = {action.value for action in TickAction}
    assert {"started", "skipped_busy", "skipped_held", "terminated"} <= values
    assert RunOutcome.SUCCEEDED.value == "succeeded"
    assert BatchStatus.FAILED_PROCESS_RECORDS.value == "FAILED_PROCESS_RECORDS"
    assert BatchStatus.FAILED.value == "FAILED"
    assert CursorCodec("timestamp")  # the cursor kind the lag queries read


def _readme_queries() -> list[str]:
    return re.findall(r"```kusto\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readme_queries_read_only_fields_the_app_logs_on_the_events_they_name() -> None:
    logged = _logged_events()
    queries = _readme_queries()
    assert len(queries) >= 5
    for query in queries:
        assert "prop__" not in query and "parse message" not in query, query
        fields = set(re.findall(r"customDimensions\.(\w+)", query))
        named = set(re.findall(r'(?:event|customDimensions\.event\)) == "([^"]+)"', query))
        assert named <= set(logged), f"events no log_event call logs: {named - set(logged)}"
        # A query naming no event (one run's or one load's lines) reads fields of any event.
        offered = set().union(*(logged[event] for event in (named or logged)))
        assert fields <= offered, (
            f"infra/README.md reads {sorted(fields - offered)}, which no log_event call of "
            f"{sorted(named) or 'any event'} attaches:\n{query}")


def test_the_readme_lists_every_event_the_app_logs_with_exactly_its_fields() -> None:
    section = README.read_text().split("### Logs with fields", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([a-z_, ]+) \|$", section, re.MULTILINE)
    assert rows, "infra/README.md has no table of log events under 'Logs with fields'"
    documented = {event: {"event", *fields.split(", ")} for event, fields in rows}
    logged = _logged_events()
    differing = sorted(event for event in set(documented) & set(logged)
                       if documented[event] != logged[event])
    assert documented == logged, (
        "infra/README.md's table of log events differs from the app's log_event calls: "
        f"documented only {sorted(set(documented) - set(logged))}, logged only "
        f"{sorted(set(logged) - set(documented))}, fields differ for {differing}")
