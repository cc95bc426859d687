"""picas.support.durations: one parser and one formatter, and what the formatter prints parses back."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from picas.cli.options import DURATION
from picas.errors import InvalidInput
from picas.support.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400),
    ("1h 30m", 5400), ("2.5h", 9000), ("1H", 3600), (45, 45), (1.5, 1.5), ("0", 0),
])
def test_parse(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "h", "1h 2q", "-5", "nan", "inf", "1h-5m", True])
def test_parse_refuses_what_is_no_duration(text) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


@pytest.mark.parametrize("seconds, two, one", [
    (None, "unknown", "unknown"), (0, "0s", "0s"), (45, "45s", "45s"), (200, "3m 20s", "3m"),
    (3720, "1h 02m", "1h"), (3600, "1h 00m", "1h"), (93600, "1d 02h", "1d"), (-5, "0s", "0s"),
])
def test_format(seconds, two, one) -> None:
    assert format_duration(seconds) == two
    assert format_duration(seconds, parts=1) == one


@pytest.mark.parametrize("seconds", [0, 59, 61, 3599, 3661, 86399, 90061, 10 ** 7])
def test_what_is_printed_can_be_typed_back(seconds) -> None:
    shown = format_duration(seconds, parts=4)
    assert parse_duration(shown) == seconds


def test_the_click_type_gives_seconds_and_names_the_option_on_bad_input() -> None:
    @click.command()
    @click.option("--max-time", type=DURATION)
    def cmd(max_time):
        click.echo(repr(max_time))

    assert CliRunner().invoke(cmd, ["--max-time", "1h30m"]).output == "5400.0\n"
    assert CliRunner().invoke(cmd, []).output == "None\n"
    result = CliRunner().invoke(cmd, ["--max-time", "soon"])
    assert result.exit_code == 2 and "--max-time" in result.output and "cannot read the duration" in result.output
