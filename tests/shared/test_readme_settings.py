"""The README's settings table is the settings object, setting for setting."""

from devtools.settings_table import README, readme_table, settings_table
from shared.config import all_settings


def test_readme_lists_every_setting_the_code_reads_with_its_default() -> None:
    documented = readme_table(README.read_text())

    assert documented == settings_table(), (
        "README.md's settings table is stale: run `python -m devtools.settings_table --write`"
    )
    for spec in all_settings():
        assert f"| `{spec.name}` |" in documented
