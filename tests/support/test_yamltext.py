"""picas.support.yamltext: malformed YAML gives one line naming the file, line and column."""
from __future__ import annotations

import pytest

from picas.errors import ConfigError, InvalidInput
from picas.support.yamltext import load_yaml


def test_valid_yaml_is_loaded_safely() -> None:
    assert load_yaml("a: [1, 2]\n", "x.yml") == {"a": [1, 2]}
    with pytest.raises(InvalidInput):
        load_yaml("!!python/object/apply:os.system ['true']\n", "evil.yml", InvalidInput)


def test_a_bad_file_is_named_with_its_line_in_the_error_class_asked_for() -> None:
    with pytest.raises(InvalidInput) as caught:
        load_yaml("a:\n  input: [1, 2\nb: 3\n", "broken.yaml", InvalidInput)
    message = str(caught.value)
    assert message.startswith("broken.yaml:3:") and "malformed YAML" in message
    assert "from line 2" in message, "the line where the unclosed list began is named too"
    assert "\n" not in message


def test_a_tab_indent_is_reported_as_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"conf\.yml:2:1: malformed YAML"):
        load_yaml("profiles:\n\tdefault: {}\n", "conf.yml", ConfigError)
