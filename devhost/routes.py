"""HTTP trigger route templates, matched the way the Functions host (ASP.NET routing) does.

Supported: literal segments (case-insensitive), `{name}`, optional `{name?}`, defaults
`{name=value}`, catch-all `{*rest}`, and the inline constraints int, long, bool, float,
double, decimal, guid, datetime, alpha, min(n), max(n), range(a,b), length(n), length(a,b),
minlength(n), maxlength(n), regex(expr). Several constraints chain with `:`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

_PARAMETER = re.compile(r"^\{(?P<star>\*{1,2})?(?P<body>[^{}]+)\}$")
_CONSTRAINT = re.compile(r"^(?P<name>[a-zA-Z]+)(?:\((?P<arg>.*)\))?$")


class RouteTemplateError(ValueError):
    """A route template cannot be parsed; the message names the template and the reason."""


def _parses(convert: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            convert(value)
        except (ValueError, InvalidOperation):
            return False
        return True

    return check


def _is_bool(value: str) -> bool:
    return value.lower() in ("true", "false")


def _is_int_in(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return low <= int(value) <= high
        except ValueError:
            return False

    return check


def _constraint_check(spec: str, template: str) -> Callable[[str], bool]:
    match = _CONSTRAINT.match(spec)
    if not match:
        raise RouteTemplateError(f"route {template!r}: unknown constraint {spec!r}")
    name, arg = match.group("name").lower(), match.group("arg")
    numbers = [int(part) for part in arg.split(",")] if arg and name != "regex" else []
    simple: dict[str, Callable[[str], bool]] = {
        "int": _is_int_in(-(2**31), 2**31 - 1),
        "long": _is_int_in(-(2**63), 2**63 - 1),
        "bool": _is_bool,
        "float": _parses(float),
        "double": _parses(float),
        "decimal": _parses(Decimal),
        "guid": _parses(uuid.UUID),
        "datetime": _parses(datetime.fromisoformat),
        "alpha": lambda value: value.isascii() and value.isalpha(),
    }
    if name in simple:
        return simple[name]
    if name == "min" and len(numbers) == 1:
        return _is_int_in(numbers[0], 2**63)
    if name == "max" and len(numbers) == 1:
        return _is_int_in(-(2**63), numbers[0])
    if name == "range" and len(numbers) == 2:
        return _is_int_in(numbers[0], numbers[1])
    if name == "length" and len(numbers) == 1:
        return lambda value: len(value) == numbers[0]
    if name == "length" and len(numbers) == 2:
        return lambda value: numbers[0] <= len(value) <= numbers[1]
    if name == "minlength" and len(numbers) == 1:
        return lambda value: len(value) >= numbers[0]
    if name == "maxlength" and len(numbers) == 1:
        return lambda value: len(value) <= numbers[0]
    if name == "regex" and arg is not None:
        pattern = re.compile(arg, re.IGNORECASE)
        return lambda value: pattern.search(value) is not None
    raise RouteTemplateError(f"route {template!r}: unknown constraint {spec!r}")


def _split_constraints(body: str) -> list[str]:
    """Split `name:c1:c2(x:y)` on colons that are outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in body:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return parts


@dataclass(frozen=True)
class _Segment:
    literal: str | None = None
    name: str | None = None
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: tuple[Callable[[str], bool], ...] = field(default=())

    @property
    def rank(self) -> int:
        """Lower ranks win when two templates match: literals beat parameters."""
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional or self.default is not None:
            return 3
        return 1 if self.checks else 2


def _parse_segment(text: str, template: str) -> _Segment:
    match = _PARAMETER.match(text)
    if not match:
        if "{" in text or "}" in text:
            raise RouteTemplateError(
                f"route {template!r}: segment {text!r} mixes text and parameters, "
                "which this host does not support"
            )
        return _Segment(literal=text)
    name, *constraints = _split_constraints(match.group("body"))
    optional = name.endswith("?")
    name = name.rstrip("?")
    default = None
    if "=" in name:
        name, default = name.split("=", 1)
    if optional and constraints and constraints[-1].endswith("?"):
        constraints[-1] = constraints[-1][:-1]
    if constraints and constraints[-1].endswith("?"):
        optional = True
        constraints[-1] = constraints[-1][:-1]
    if not name.isidentifier():
        raise RouteTemplateError(f"route {template!r}: bad parameter name {name!r}")
    return _Segment(
        name=name,
        optional=optional,
        catch_all=bool(match.group("star")),
        default=default,
        checks=tuple(_constraint_check(spec, template) for spec in constraints),
    )


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template; `match` returns route parameters or None."""

    template: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip().strip("/")
        segments = tuple(_parse_segment(part, template) for part in text.split("/") if part)
        for index, segment in enumerate(segments[:-1]):
            if segment.catch_all:
                raise RouteTemplateError(
                    f"route {template!r}: a catch-all parameter must be the last segment"
                )
            if segment.optional and not all(
                later.optional or later.catch_all or later.default is not None
                for later in segments[index + 1 :]
            ):
                raise RouteTemplateError(
                    f"route {template!r}: an optional parameter must be at the end"
                )
        return cls(template=template, segments=segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return (*(segment.rank for segment in self.segments), 5)

    def match(self, path: str) -> dict[str, str] | None:
        parts = [unquote(part) for part in path.strip("/").split("/") if part]
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(parts[index:])
                if rest:
                    values[segment.name or ""] = rest
                elif segment.default is not None:
                    values[segment.name or ""] = segment.default
                return values if self._passes(segment, rest) else None
            if index >= len(parts):
                if segment.default is not None:
                    values[segment.name or ""] = segment.default
                    continue
                if segment.optional:
                    continue
                return None
            part = parts[index]
            if segment.literal is not None:
                if part.lower() != segment.literal.lower():
                    return None
                continue
            if not self._passes(segment, part):
                return None
            values[segment.name or ""] = part
        if len(parts) > len(self.segments):
            return None
        return values

    @staticmethod
    def _passes(segment: _Segment, value: str) -> bool:
        if not value:
            return True
        return all(check(value) for check in segment.checks)
