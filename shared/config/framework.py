"""The settings framework: declare a setting, parse its text, read a section.

A section is a frozen dataclass whose fields are `setting(...)`s; an optional `validate()`
method returns the problems that need several of its settings. Every parser raises
ValueError with a message that says what was expected; `read_section` turns that into
`"<SETTING> is malformed: <message>"`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

from croniter import CroniterError, croniter

MISSING: Any = object()
KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("
_CRON_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    default: str | None
    required: bool
    secret: bool
    section: str


class SettingsError(ValueError):
    """One or more app settings are missing or malformed; `problems` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid app settings:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


def setting(
    name: str,
    *,
    description: str,
    default: Any = MISSING,
    secret: bool = False,
    parse: Callable[[str], Any] = str,
) -> Any:
    """Declare a dataclass field read from the app setting `name`.

    Without a default the setting is required. `parse` turns the text into the field's
    value and raises ValueError with a human message when the text is malformed.
    """
    return dataclasses.field(
        # A secret's value must not reach a log line through the section's repr.
        repr=not secret,
        metadata={
            "setting": name,
            "description": description,
            "default": default,
            "secret": secret,
            "parse": parse,
        },
    )


def setting_name(cls: type, field_name: str) -> str:
    """The app setting a section's field is read from."""
    setting: str = next(field.metadata["setting"] for field in dataclasses.fields(cls)
                        if field.name == field_name)
    return setting


def section_specs(cls: type, section: str) -> list[SettingSpec]:
    """The settings one section declares, in declaration order."""
    specs = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        default = None if meta["default"] is MISSING else meta["default"]
        specs.append(
            SettingSpec(
                name=meta["setting"],
                description=meta["description"],
                default=None if default is None else str(default),
                required=meta["default"] is MISSING,
                secret=meta["secret"],
                section=section,
            )
        )
    return specs


def secret_values(section: object) -> list[str]:
    """The values of a section's settings declared `secret=True` that are set."""
    values = []
    for field in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, field.name)
        if field.metadata.get("secret") and isinstance(value, str) and value:
            values.append(value)
    return values


# -- parsers: each raises ValueError with a message that says what was expected ----------


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"expected a number above 0, got {value}")
    return value


def parse_non_negative_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected a number of 0 or more, got {value}")
    return value


def parse_int_between(lowest: int, highest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if not lowest <= value <= highest:
            raise ValueError(f"expected a number from {lowest} to {highest}, got {value}")
        return value

    return parse


def parse_seconds(text: str) -> float:
    """Seconds as a number (`90`, `2.5`) or a .NET TimeSpan `hh:mm:ss` as in host.json."""
    stripped = text.strip()
    try:
        if ":" in stripped:
            hours, minutes, seconds = stripped.split(":")
            value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(stripped)
    except ValueError:
        raise ValueError(f"expected seconds or hh:mm:ss, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected a duration of 0 or more, got {text!r}")
    return value


def parse_http_url(text: str) -> str:
    parsed = urlparse(text.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text.strip().rstrip("/")


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text.strip()

    return parse


def parse_api_version(text: str) -> str:
    stripped = text.strip().removeprefix("v")
    if not re.fullmatch(r"\d{2,3}(\.0)?", stripped):
        raise ValueError(f"expected a Salesforce API version such as 62.0, got {text!r}")
    return stripped if stripped.endswith(".0") else stripped + ".0"


def parse_pem_private_key(text: str) -> str:
    pem = text.strip().replace("\\n", "\n")
    if not (pem.startswith("-----BEGIN") and "PRIVATE KEY-----" in pem):
        raise ValueError("expected a PEM private key (-----BEGIN PRIVATE KEY----- ...)")
    return pem + "\n"


def parse_ncrontab(text: str) -> str:
    """A six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {weekday}).

    Ranges, names and steps are checked by croniter (seconds field first, day and weekday
    both required, as the Functions host reads them), so a schedule the host would refuse
    or never fire is refused here, with the setting's name.
    """
    fields = text.split()
    if len(fields) != 6:
        raise ValueError(
            "expected a six-field NCRONTAB expression {second} {minute} {hour} {day} {month} "
            f"{{day-of-week}} such as '0 */5 * * * *', got {text!r}"
        )
    expression = " ".join(fields)
    try:
        schedule = croniter(expression, _CRON_ORIGIN, second_at_beginning=True, day_or=False)
    except (CroniterError, ValueError, KeyError) as error:
        problem = "a value out of range" if "out of range" in str(error) else "an unreadable field"
        raise ValueError(
            f"{text!r} is not a valid NCRONTAB expression ({problem}); fields: {{second}} "
            "{minute} {hour} {day} {month} {day-of-week}"
        ) from error
    try:
        schedule.get_next(datetime)
    except CroniterError as error:
        raise ValueError(f"{text!r} never fires (no date matches it)") from error
    return expression


_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_CONTAINER_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


def parse_table_name(text: str) -> str:
    """An Azure Storage table name: 3-63 letters and digits, starting with a letter."""
    name = text.strip()
    # Storage refuses the name only at first use, so every run would fail: refuse it here.
    if not _TABLE_NAME.fullmatch(name) or name.lower() == "tables":
        raise ValueError(
            "expected an Azure table name, 3-63 letters and digits starting with a letter "
            f"(not 'tables'), got {text!r}"
        )
    return name


def parse_container_name(text: str) -> str:
    """An Azure blob container name: 3-63 lower-case letters, digits and single hyphens,
    starting and ending with a letter or digit."""
    name = text.strip()
    if not _CONTAINER_NAME.fullmatch(name):
        raise ValueError(
            "expected a blob container name, 3-63 lower-case letters, digits and single "
            f"hyphens starting and ending with a letter or digit, got {text!r}"
        )
    return name


# -- reading sections -------------------------------------------------------------------

Section = TypeVar("Section")


def _read_field(
    field: dataclasses.Field[Any], environ: Mapping[str, str]
) -> tuple[Any, str | None]:
    meta = field.metadata
    name = meta["setting"]
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if meta["default"] is MISSING:
            return None, f"{name} is missing: {meta['description']}"
        return meta["default"], None
    if raw.startswith(KEY_VAULT_REFERENCE_PREFIX):
        # In Azure the platform resolves the reference before the app starts; seeing the
        # reference itself means the platform could not (identity or vault access).
        return None, (
            f"{name} is an unresolved Key Vault reference: check the app's "
            "keyVaultReferenceIdentity and its Key Vault Secrets User role"
        )
    try:
        return meta["parse"](raw), None
    except ValueError as error:
        return None, f"{name} is malformed: {error}"


def read_section(
    cls: type[Section], environ: Mapping[str, str]
) -> tuple[Section | None, list[str]]:
    """Read one section; returns it with no problems, or None with every problem found."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    bad: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value, problem = _read_field(field, environ)
        if problem:
            problems.append(problem)
            bad.append(field.metadata["setting"])
            if field.metadata["default"] is MISSING:
                return None, problems
            # The default stands in for the bad value, so that the checks across settings
            # below still run and every bad setting is named at once.
            value = field.metadata["default"]
        values[field.name] = value
    section = cls(**values)
    validate = getattr(section, "validate", None)
    if validate is not None:
        # A check that names a setting already reported would judge the stand-in value.
        problems.extend(problem for problem in validate()
                        if not any(_names(problem, name) for name in bad))
    return (None if problems else section), problems


def _names(problem: str, setting_name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(setting_name)}(?![A-Za-z0-9_])",
                     problem) is not None
