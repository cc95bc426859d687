"""Reading YAML that a person wrote, with errors that point at the line to fix.

PyYAML's own messages span several lines and quote internal marks; a user
needs one line: which file, which line and column, what is wrong.  Every
YAML input picas reads (config files, ``picas push`` token files, autopilot
class files) goes through :func:`load_yaml`, so they all say it the same way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from picas.errors import PicasError

if TYPE_CHECKING:  # imported where YAML is read: a pilot with no config file never pays for importing it
    import yaml

__all__ = ["load_yaml", "yaml_error_message"]


def yaml_error_message(name: object, exc: yaml.YAMLError) -> str:
    """``<name>:<line>:<column>: malformed YAML: <what>``, or without position where YAML gives none.

    Where the problem was noticed on another line than where its construct
    began (an unclosed quote, a bad indent), that line is named too.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else problem
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        detail = f"{context} (from line {context_mark.line + 1}), {problem}"
    if mark is not None:
        return f"{name}:{mark.line + 1}:{mark.column + 1}: malformed YAML: {detail}"
    return f"{name}: malformed YAML: {detail}"


def load_yaml(text: str, name: object, error: type[PicasError] = PicasError) -> Any:
    """``yaml.safe_load(text)``; malformed YAML raises ``error`` with :func:`yaml_error_message`.

    ``name`` is what the user knows the text by (a path, ``<stdin>``);
    ``error`` is the picas error class that fits the caller (a config file
    is a :class:`~picas.errors.ConfigError`, pushed tokens are
    :class:`~picas.errors.InvalidInput`).
    """
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(yaml_error_message(name, exc)) from None
