"""The pilot options, declared once: what 'picas run' takes, a PilotConfig, and what 'submit' passes on."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from picas import defaults
from picas.errors import ConfigError, InvalidInput
from picas.pilot.config import PilotConfig
from picas.pilot.options import PILOT_OPTIONS, Option, click_options, pilot_args, pilot_config


def _capture(pass_through: bool, *args: str) -> dict:
    seen: dict = {}

    @click.command()
    @click_options(PILOT_OPTIONS, pass_through=pass_through)
    def command(**values):
        seen.update(values)

    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen


def test_every_pilot_config_field_a_user_sets_is_an_option():
    fields = {opt.field for opt in PILOT_OPTIONS if opt.field}
    internal = {"poll_max", "lease_factor", "release_state", "attach_logs", "window", "view_params"}
    assert fields == set(PilotConfig.__dataclass_fields__) - internal


def test_run_gets_the_defaults_and_a_config():
    values = _capture(False)
    assert pilot_config(values) == PilotConfig()
    assert (values["heartbeat"], values["grace"], values["outage_timeout"], values["log_cap"]) == \
        (defaults.HEARTBEAT, defaults.GRACE, defaults.OUTAGE_TIMEOUT, defaults.LOG_CAP)
    values = _capture(False, "--design-doc", "D", "--max-time", "1h30m", "--scrub-expired", "--wait", "--grace", "3",
                      "--workdir", "w")
    config = pilot_config(values)
    assert (config.design, config.max_time, config.scrub_every, config.wait, config.grace, config.workdir) == \
        ("D", 5400.0, defaults.SCRUB_EVERY, True, 3.0, Path("w"))


def test_submit_passes_on_only_what_was_given():
    assert _capture(True) == {opt.name: None for opt in PILOT_OPTIONS}
    assert pilot_args(_capture(True)) == []
    values = _capture(True, "--max-tasks", "3", "--retries", "0", "--no-wait", "--scrub-expired", "--keep-workdirs",
                      "-q", "--token-timeout", "90s")
    assert pilot_args(values) == ["--max-tasks=3", "--token-timeout=90", "--no-wait", "--retries=0",
                                  "--scrub-expired=300", "--keep-workdirs", "--quiet"]
    assert pilot_args({"max_tasks": 3, "retries": 0, "max_time": None}) == ["--max-tasks=3", "--retries=0"]


def test_option_values_from_text():
    cores = Option("cores", "Cores.", "int", minimum=1)
    assert cores.parse("4", "here") == 4 and cores.key == "cores"
    with pytest.raises(InvalidInput, match="here: cores must be at least 1"):
        cores.parse("0", "here")
    with pytest.raises(ConfigError, match="whole number"):
        cores.parse("four", "file", ConfigError)
    assert Option("limit", "A limit.", "duration").parse("2m", "x") == 120.0
    assert Option("lines", "Lines.", multiple=True).parse("one", "x") == ["one"]
    assert Option("on", "On.", "switch").parse("yes", "x") is True
    with pytest.raises(ValueError):
        Option("bad", "Bad.", "colour")
