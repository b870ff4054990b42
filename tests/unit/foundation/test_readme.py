"""The README's configuration table documents every setting that config.py reads."""

from __future__ import annotations

from pathlib import Path

from geminivideo.config import Settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    section = text[text.index("## Configuration"):text.index("## Running workers")]
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in section]
    assert not missing, f"add these variables to the README's configuration table: {missing}"


def test_the_first_two_commands_are_demo_and_test() -> None:
    commands = [line.split()[0:2] for line in README.read_text().splitlines() if line.startswith("make ")]
    assert commands[:2] == [["make", "demo"], ["make", "test"]]
