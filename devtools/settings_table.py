"""Print the README's settings table from the one source of truth, shared/config/.

    python -m devtools.settings_table           # print the table
    python -m devtools.settings_table --write   # replace the table in README.md

tests/shared/test_readme_settings.py fails when README.md and the settings object differ.
"""

from __future__ import annotations

import argparse
import sys

from devtools.services import REPO_ROOT
from shared.config import all_settings

README = REPO_ROOT / "README.md"
START = "<!-- settings-table:start (python -m devtools.settings_table --write) -->"
END = "<!-- settings-table:end -->"


def settings_table() -> str:
    lines = ["| setting | default | secret | meaning |", "|---|---|---|---|"]
    for spec in all_settings():
        default = "—" if spec.default is None else f"`{spec.default}`"
        meaning = spec.description.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| `{spec.name}` | {default} | {'yes' if spec.secret else 'no'} | {meaning} |"
        )
    return "\n".join(lines)


def readme_table(readme_text: str) -> str:
    """The table between the markers of README.md."""
    start = readme_text.index(START) + len(START)
    return readme_text[start:readme_text.index(END)].strip()


def write_readme_table() -> None:
    text = README.read_text()
    start = text.index(START) + len(START)
    end = text.index(END)
    README.write_text(text[:start] + "\n" + settings_table() + "\n" + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    if parser.parse_args().write:
        write_readme_table()
    else:
        sys.stdout.write(settings_table() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
