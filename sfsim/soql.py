"""A small SOQL subset: what integration clients send to read back what they wrote.

    SELECT field, Parent.field, COUNT() FROM Object
      [WHERE cond (AND|OR cond)...]  cond: field (=|!=|<>|<|<=|>|>=|LIKE) value
                                           | field [NOT] IN (value, ...) | NOT cond | (cond)
      [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]

String comparisons are case-insensitive as in Salesforce. Anything else is refused with
`MALFORMED_QUERY`, as Salesforce does for syntax it cannot parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sfsim.org import Org

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?(?![\w-]))"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.]*(?:\(\))?))",
)


class QueryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: Callable[[dict[str, Any]], bool] | None = None
    order_by: list[tuple[str, bool, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    count_only: bool = False


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError("MALFORMED_QUERY", f"unexpected token at: {text[position:][:30]}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, org: Org) -> None:
        self.tokens = tokenize(text)
        self.position = 0
        self.org = org

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def next(self) -> tuple[str, str]:
        token = self.peek()
        self.position += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() == words[0]:
            for offset, word in enumerate(words):
                k, v = self.peek(offset)
                if k != "word" or v.upper() != word:
                    return False
            self.position += len(words)
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise QueryError("MALFORMED_QUERY", f"expected {word} near {self.peek()[1]!r}")

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        count_only = False
        while True:
            kind, value = self.next()
            if kind != "word":
                raise QueryError("MALFORMED_QUERY", f"unexpected {value!r} in the field list")
            if value.upper() == "COUNT()":
                count_only = True
            else:
                fields.append(value)
            if self.peek() == ("punct", ","):
                self.next()
                continue
            break
        self.expect_keyword("FROM")
        kind, sobject = self.next()
        obj = self.org.object_named(sobject) if kind == "word" else None
        if obj is None:
            raise QueryError(
                "INVALID_TYPE",
                f"sObject type '{sobject}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name.",
            )
        query = Query(fields=fields, sobject=obj.name, count_only=count_only)
        for name in fields:
            self.check_field(obj.name, name)
        if self.keyword("WHERE"):
            query.where = self.parse_or(obj.name)
        if self.keyword("ORDER", "BY"):
            while True:
                kind, name = self.next()
                self.check_field(obj.name, name)
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                nulls_last = descending
                if self.keyword("NULLS", "FIRST"):
                    nulls_last = False
                elif self.keyword("NULLS", "LAST"):
                    nulls_last = True
                query.order_by.append((name, descending, nulls_last))
                if self.peek() == ("punct", ","):
                    self.next()
                    continue
                break
        if self.keyword("LIMIT"):
            query.limit = int(self.number())
        if self.keyword("OFFSET"):
            query.offset = int(self.number())
        if self.peek()[0] != "end":
            raise QueryError("MALFORMED_QUERY", f"unexpected token: {self.peek()[1]!r}")
        return query

    def number(self) -> float:
        kind, value = self.next()
        if kind != "number":
            raise QueryError("MALFORMED_QUERY", f"expected a number, got {value!r}")
        return float(value)

    def check_field(self, sobject: str, name: str) -> None:
        obj = self.org.objects[sobject]
        parts = name.split(".")
        for relationship in parts[:-1]:
            reference = obj.relationship(relationship)
            if reference is None:
                break
            obj = self.org.objects[reference.reference_to or ""]
        else:
            if obj.field_named(parts[-1]) is not None:
                return
        raise QueryError(
            "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'."
        )

    def parse_or(self, sobject: str) -> Callable[[dict[str, Any]], bool]:
        terms = [self.parse_and(sobject)]
        while self.keyword("OR"):
            terms.append(self.parse_and(sobject))
        return terms[0] if len(terms) == 1 else (lambda r: any(t(r) for t in terms))

    def parse_and(self, sobject: str) -> Callable[[dict[str, Any]], bool]:
        terms = [self.parse_not(sobject)]
        while self.keyword("AND"):
            terms.append(self.parse_not(sobject))
        return terms[0] if len(terms) == 1 else (lambda r: all(t(r) for t in terms))

    def parse_not(self, sobject: str) -> Callable[[dict[str, Any]], bool]:
        if self.keyword("NOT"):
            inner = self.parse_not(sobject)
            return lambda r: not inner(r)
        if self.peek() == ("punct", "("):
            self.next()
            inner = self.parse_or(sobject)
            if self.next() != ("punct", ")"):
                raise QueryError("MALFORMED_QUERY", "expected )")
            return inner
        return self.parse_condition(sobject)

    def parse_condition(self, sobject: str) -> Callable[[dict[str, Any]], bool]:
        kind, name = self.next()
        if kind != "word":
            raise QueryError("MALFORMED_QUERY", f"expected a field name, got {name!r}")
        self.check_field(sobject, name)
        getter = self.getter(sobject, name)
        negate = self.keyword("NOT")
        if self.keyword("IN"):
            if self.next() != ("punct", "("):
                raise QueryError("MALFORMED_QUERY", "expected ( after IN")
            values = []
            while True:
                values.append(_comparable(self.literal()))
                separator = self.next()
                if separator == ("punct", ")"):
                    break
                if separator != ("punct", ","):
                    raise QueryError("MALFORMED_QUERY", "expected , or ) in an IN list")
            return lambda r: (_comparable(getter(r)) in values) != negate
        if negate:
            raise QueryError("MALFORMED_QUERY", "NOT must be followed by IN here")
        if self.keyword("LIKE"):
            pattern = self.literal()
            regex = re.compile(
                "^" + "".join(
                    ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(pattern)
                ) + "$",
                re.IGNORECASE | re.DOTALL,
            )
            return lambda r: getter(r) is not None and bool(regex.match(str(getter(r))))
        kind, op = self.next()
        if kind != "op":
            raise QueryError("MALFORMED_QUERY", f"expected an operator, got {op!r}")
        expected = _comparable(self.literal())
        compare = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<>": lambda a, b: a != b,
            "<": lambda a, b: a is not None and b is not None and a < b,
            "<=": lambda a, b: a is not None and b is not None and a <= b,
            ">": lambda a, b: a is not None and b is not None and a > b,
            ">=": lambda a, b: a is not None and b is not None and a >= b,
        }[op]

        def condition(record: dict[str, Any]) -> bool:
            try:
                return compare(_comparable(getter(record)), expected)
            except TypeError:
                return False

        return condition

    def literal(self) -> Any:
        kind, value = self.next()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "number":
            return float(value)
        if kind == "datetime":
            return value
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value.lower() == "null":
            return None
        raise QueryError("MALFORMED_QUERY", f"expected a value, got {value!r}")

    def getter(self, sobject: str, name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda record: resolve_path(self.org, sobject, record, name)


def resolve_path(org: Org, sobject: str, record: dict[str, Any] | None, name: str) -> Any:
    obj = org.objects[sobject]
    parts = name.split(".")
    for relationship in parts[:-1]:
        if record is None:
            return None
        reference = obj.relationship(relationship)
        assert reference is not None
        parent_id = record.get(reference.name)
        obj = org.objects[reference.reference_to or ""]
        record = org.records[obj.name].get(parent_id) if parent_id else None
    if record is None:
        return None
    target = obj.field_named(parts[-1])
    return record.get(target.name) if target else None


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def parse_query(text: str, org: Org) -> Query:
    return _Parser(text, org).parse()


def run_query(text: str, org: Org, include_deleted: bool = False) -> tuple[Query, list[dict]]:
    query = parse_query(text, org)
    with org.lock:
        records = list(org.records[query.sobject].values())
        if query.where is not None:
            records = [r for r in records if query.where(r)]
    for name, descending, nulls_last in reversed(query.order_by):
        present = [r for r in records if resolve_path(org, query.sobject, r, name) is not None]
        absent = [r for r in records if resolve_path(org, query.sobject, r, name) is None]

        def sort_key(record: dict[str, Any], path: str = name) -> Any:
            return _comparable(resolve_path(org, query.sobject, record, path))

        present.sort(key=sort_key, reverse=descending)
        records = present + absent if nulls_last else absent + present
    records = records[query.offset :]
    if query.limit is not None:
        records = records[: query.limit]
    return query, records


def shape_record(org: Org, sobject: str, record: dict[str, Any], fields: list[str],
                 api_version: str) -> dict[str, Any]:
    """A record as the REST API returns it: attributes, then fields, parents nested."""
    out: dict[str, Any] = {
        "attributes": {
            "type": sobject,
            "url": f"/services/data/v{api_version}/sobjects/{sobject}/{record['Id']}",
        }
    }
    obj = org.objects[sobject]
    for name in fields:
        parts = name.split(".")
        if len(parts) == 1:
            target = obj.field_named(name)
            out[target.name if target else name] = record.get(target.name if target else name)
            continue
        reference = obj.relationship(parts[0])
        assert reference is not None
        parent_id = record.get(reference.name)
        parent_name = reference.reference_to or ""
        parent = org.records[parent_name].get(parent_id) if parent_id else None
        key = reference.relationship_name or parts[0]
        if parent is None:
            out.setdefault(key, None)
            continue
        nested = out.get(key) or {}
        shaped = shape_record(org, parent_name, parent, [".".join(parts[1:])], api_version)
        nested.update(shaped)
        out[key] = nested
    return out
