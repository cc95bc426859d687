"""Carry over a classic ``picasconfig.py`` without running it."""
from __future__ import annotations

import ast
from pathlib import Path

from picas.errors import ConfigError

#: The names a classic ``picasconfig.py`` uses, mapped to our keys.
PICASCONFIG_NAMES = {
    "PICAS_HOST_URL": "url",
    "PICAS_DATABASE": "database",
    "PICAS_USERNAME": "username",
    "PICAS_PASSWORD": "password",
}


def import_picasconfig(py_file: Path) -> dict[str, str | None]:
    """Read the settings out of a classic ``picasconfig.py`` without running it.

    Old picas projects keep credentials in a Python module.  Executing a
    file just to read four strings would run whatever else is in it, so the
    file is parsed with :mod:`ast` and only plain top-level string
    assignments (``PICAS_HOST_URL = "https://..."``) are taken; the last one
    wins, as it would at run time, and empty strings count as unset.
    """
    py_file = Path(py_file)
    try:
        source = py_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{py_file}: no such file", hint="give the path of your picasconfig.py") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{py_file}: cannot read it: {exc}") from None
    try:
        tree = ast.parse(source, filename=str(py_file))
    except SyntaxError as exc:
        raise ConfigError(f"{py_file}:{exc.lineno or '?'}: not valid Python: {exc.msg}",
                          hint="fix the file, or run 'picas init' instead") from None

    found: dict[str, str | None] = {key: None for key in PICASCONFIG_NAMES.values()}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in PICASCONFIG_NAMES:
                found[PICASCONFIG_NAMES[target.id]] = value.value or None

    if not any(found.values()):
        raise ConfigError(
            f"{py_file}: found no PICAS_HOST_URL, PICAS_DATABASE, PICAS_USERNAME or PICAS_PASSWORD "
            "set to a non-empty string",
            hint="only plain assignments like PICAS_HOST_URL = \"https://...\" are read; or run 'picas init'",
        )
    return found
