"""Reads the Bicep templates in infra/ through the tree-sitter Bicep grammar.

The tests look at declarations (resources, variables, parameters, module calls) as parsed
nodes, not as text matched by regular expressions, so layout and comments do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tree_sitter
import tree_sitter_bicep

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "function-app.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


@cache
def parse(path: Path) -> tree_sitter.Tree:
    return _parser().parse(path.read_bytes())


def syntax_problems(path: Path) -> list[str]:
    """Every ERROR or MISSING node of the file, as `line:column: text`."""
    problems: list[str] = []

    def visit(node: tree_sitter.Node) -> None:
        if node.is_error or node.is_missing:
            line, column = node.start_point
            kind = "missing" if node.is_missing else "error"
            problems.append(f"{line + 1}:{column + 1}: {kind} near {node.text[:60]!r}")
        for child in node.children:
            visit(child)

    visit(parse(path).root_node)
    return problems


def text(node: tree_sitter.Node) -> str:
    return node.text.decode()


def string_value(node: tree_sitter.Node) -> str | None:
    """The value of a plain string literal (no interpolation), else None."""
    if node.type != "string" or any(c.type == "interpolation" for c in node.children):
        return None
    return "".join(
        text(c) if c.type == "string_content" else _unescape(text(c))
        for c in node.children
        if c.type in {"string_content", "escape_sequence"}
    )


def _unescape(sequence: str) -> str:
    return {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}.get(
        sequence, sequence
    )


def _declarations(path: Path, kind: str) -> dict[str, tree_sitter.Node]:
    found = {}
    for node in parse(path).root_node.named_children:
        if node.type == kind:
            name = next(c for c in node.named_children if c.type == "identifier")
            found[text(name)] = node
    return found


def _value_of(declaration: tree_sitter.Node) -> tree_sitter.Node:
    """The expression after `=` of a var/param/resource/module declaration."""
    children = declaration.children
    index = next(i for i, c in enumerate(children) if c.type == "=")
    return children[index + 1]


def parameter_names(path: Path, *, required_only: bool = False) -> set[str]:
    """Parameters of the file; `required_only`: those without a default value."""
    return {
        name
        for name, node in _declarations(path, "parameter_declaration").items()
        if not required_only or not any(c.type == "=" for c in node.children)
    }


def variable_value(path: Path, name: str) -> tree_sitter.Node:
    variables = _declarations(path, "variable_declaration")
    assert name in variables, f"{path.relative_to(REPO_ROOT)} declares no `var {name}`"
    return _value_of(variables[name])


def object_entries(node: tree_sitter.Node) -> dict[str, tree_sitter.Node]:
    """Property name -> value node of an object literal (quoted or bare names)."""
    assert node.type == "object", f"expected an object literal, got {node.type}: {text(node)[:80]}"
    entries: dict[str, tree_sitter.Node] = {}
    for prop in node.named_children:
        if prop.type != "object_property":
            continue
        key, value = prop.named_children[0], prop.named_children[-1]
        name = string_value(key) if key.type == "string" else text(key)
        assert name is not None, f"computed property name {text(key)!r}"
        assert name not in entries, f"property {name} is declared twice"
        entries[name] = value
    return entries


def property_path(node: tree_sitter.Node, *names: str) -> tree_sitter.Node:
    """Follow nested object properties, e.g. property_path(site, 'properties', 'httpsOnly')."""
    for name in names:
        entries = object_entries(node)
        assert name in entries, f"no property {name!r} in {text(node)[:80]!r}"
        node = entries[name]
    return node


def module_params(path: Path, module: str) -> dict[str, tree_sitter.Node]:
    modules = _declarations(path, "module_declaration")
    assert module in modules, f"{path.relative_to(REPO_ROOT)} declares no module {module}"
    return object_entries(property_path(_value_of(modules[module]), "params"))


@dataclass(frozen=True)
class DeclaredResource:
    file: Path
    symbol: str
    type: str  # without the API version
    body: tree_sitter.Node | None  # the object literal, when the declaration has one
    loop: tuple[str, str] | None  # `[for <variable> in <iterable>: ...]`: (variable, iterable)


def declared_resources() -> list[DeclaredResource]:
    """Resources the templates create (not `existing` references) across infra/."""
    resources = []
    for path in bicep_files():
        for symbol, node in _declarations(path, "resource_declaration").items():
            if any(c.type == "existing" for c in node.children):
                continue
            type_node = next(c for c in node.named_children if c.type == "string")
            type_text = string_value(type_node)
            assert type_text, f"resource {symbol} has no literal type"
            resources.append(DeclaredResource(
                path, symbol, type_text.split("@")[0], _resource_body(node), _loop(node)
            ))
    return resources


def _loop(node: tree_sitter.Node) -> tuple[str, str] | None:
    value = _value_of(node)
    if value.type != "for_statement":
        return None
    variable, iterable = value.named_children[0], value.named_children[1]
    return text(variable), text(iterable)


def _resource_body(node: tree_sitter.Node) -> tree_sitter.Node | None:
    value = _value_of(node)
    # `= [for ...: {...}]` and `= if (...) {...}` wrap the object literal.
    while value.type != "object":
        objects = [c for c in value.named_children if c.type in {"object", "for_statement",
                                                                  "if_statement"}]
        if not objects:
            return None
        value = objects[-1]
    return value
