"""The pilot's options, declared once as data, and the click decorator that turns them into options.

``picas run`` takes them with their defaults and builds a
:class:`~picas.pilot.config.PilotConfig` (:func:`pilot_config`).  ``picas
submit SCHEDULER`` and ``picas autopilot`` take the same options without
defaults and pass the ones a user gave on to the ``picas run`` line of the
batch job (:func:`pilot_args`), so the pilot on the node falls back to its own
defaults for the rest.  They are passed on as parsed, not as typed: a
duration travels as seconds (``--max-time 3h`` becomes ``--max-time=10800``),
so a bad value is refused at submission and never reaches a pilot.  A new pilot option is one :class:`Option` in
:data:`PILOT_OPTIONS`; every command has it at once.

:class:`Option` is also how a scheduler declares its own submission options
(Slurm's ``--partition``, DIRAC's ``--site``): a scheduler module stays free of
click, and the command line is built from the declarations.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from picas import defaults
from picas.errors import InvalidInput, PicasError
from picas.pilot.config import PilotConfig

__all__ = [
    "KINDS",
    "Option",
    "PILOT_OPTIONS",
    "click_options",
    "pilot_args",
    "pilot_config",
    "side_by_side",
]

#: What an option's value is.  ``switch`` is a ``--x/--no-x`` pair, ``flag`` a lone ``--x``;
#: ``file-text`` names a file whose text becomes the value (read once, when the command starts).
KINDS = ("text", "int", "duration", "flag", "switch", "path", "file-text")


def _seconds(value: Any) -> float:
    """Seconds in a duration such as ``90``, ``15m`` or ``1h30m``: picas' one duration parser."""
    from picas.support.durations import parse_duration

    return parse_duration(value)


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Option:
    """One command-line option, as data.

    Attributes:
        name: the keyword the command receives the value as.
        help: the ``--help`` text.
        kind: one of :data:`KINDS`.
        default: the value when the option is not given (``picas run``, and a
            scheduler's own options); ``None`` means "not set".
        flags: the option's flags; the first long one is how it is passed on
            to ``picas run``.  Default: ``--name-with-dashes``.
        field: the :class:`PilotConfig` field it fills; ``None`` for options
            of the ``run`` command itself (``--jobs``, ``--quiet``) or of a
            scheduler.
        flag_value: the value when the option is given without one
            (``--scrub-expired`` alone means every 300 s).
        multiple: the option may be repeated; the value is a list.
        minimum: the smallest whole number an ``int`` takes.
        metavar: how ``--help`` names the value.
        per_class: a pilot class of the autopilot may set it (scheduler
            options only: ``MultiCore:cpus-per-task=4``).
    """

    name: str
    help: str
    kind: str = "text"
    default: Any = None
    flags: tuple[str, ...] = ()
    field: str | None = None
    flag_value: Any = None
    multiple: bool = False
    minimum: int | None = None
    metavar: str | None = None
    per_class: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")

    @property
    def long_flag(self) -> str:
        """The flag the value is passed on with, e.g. ``--scrub-expired``."""
        for flag in self.flags:
            if flag.startswith("--"):
                return flag.split("/", 1)[0]
        return "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        """The name a pilot class uses for it (``cpus-per-task``; underscores are accepted too)."""
        return self.name.replace("_", "-")

    def parse(self, value: Any, where: str, error: type[PicasError] = InvalidInput) -> Any:
        """``value`` (text from ``--class``, or YAML) converted to this option's type.

        Raises ``error`` naming ``where`` when it cannot be: the same checks
        the command line applies.
        """
        if self.multiple:
            items = value if isinstance(value, (list, tuple)) else [value]
            return [str(item) for item in items]
        if self.kind == "int":
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise error(f"{where}: {self.key} must be a whole number, got {value!r}") from None
            if self.minimum is not None and number < self.minimum:
                raise error(f"{where}: {self.key} must be at least {self.minimum}, got {value!r}")
            return number
        if self.kind == "duration":
            try:
                return _seconds(value)
            except InvalidInput as exc:
                raise error(f"{where}: {self.key}: {exc}") from None
        if self.kind in ("flag", "switch"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise error(f"{where}: {self.key} must be true or false, got {value!r}")
        return str(value)


def _pilot(name: str, help: str, kind: str = "text", default: Any = None, flags: tuple[str, ...] = (),
           field: str | None = "", **more: Any) -> Option:
    return Option(name, help, kind, default, flags, name if field == "" else field, **more)


#: Every option of ``picas run``, in its ``--help`` order.
PILOT_OPTIONS: tuple[Option, ...] = (
    _pilot("design_doc", "Design document whose view to drain.", default=defaults.DESIGN, field="design",
           metavar="NAME"),
    _pilot("view", "View that lists the tokens to take.", default=defaults.VIEW, metavar="NAME"),
    _pilot("max_tasks", "Stop after this many tokens.", "int", minimum=1),
    _pilot("max_time", "Stop taking tokens after this long (e.g. 3h).", "duration"),
    _pilot("token_timeout", "Stop a payload after this long; the token goes to error.", "duration"),
    _pilot("wait", "When the pool is empty, wait for work (with backoff) instead of exiting.", "switch",
           default=False, flags=("--wait/--no-wait",)),
    _pilot("jobs", "Run this many pilots side by side on this machine (in a batch job: on its node).", "int",
           default=1, flags=("-j", "--jobs"), field=None, minimum=1),
    _pilot("slots", "Run this many pilots in this one process, as threads: payloads run side by side, the "
           "start-up is paid once and the slots never race each other for a token. Give the job as many cores.",
           "int", default=1, field=None, minimum=1),
    _pilot("prefetch", "Claim this many tokens per request (for many short tasks).", "int",
           default=defaults.PREFETCH, minimum=1),
    _pilot("retries", "Put a failed token back this many times before it stays in error.", "int",
           default=defaults.RETRIES, minimum=0),
    _pilot("heartbeat", f"Renew the lease of held tokens this often; a lease lasts {defaults.LEASE_FACTOR:g} "
           "heartbeats.", "duration", default=defaults.HEARTBEAT),
    _pilot("grace", "Seconds between TERM and KILL when a payload must stop.", "duration", default=defaults.GRACE),
    _pilot("scrub_every", "Also reset tokens with expired leases, every so often "
           f"({_format(defaults.SCRUB_EVERY)} s when given alone).", "duration", flags=("--scrub-expired",),
           flag_value=_format(defaults.SCRUB_EVERY)),
    _pilot("max_attempts", "With --scrub-expired: a token scrubbed this often goes to error instead.", "int",
           minimum=1),
    _pilot("outage_timeout", "How long to wait out an unreachable server before giving up.", "duration",
           default=defaults.OUTAGE_TIMEOUT),
    _pilot("workdir", "Where token working directories go [default: a temporary directory].", "path",
           metavar="DIR"),
    _pilot("keep_workdirs", "Keep each token's working directory after it ran.", "flag", default=False),
    _pilot("skip_done_outputs", "Mark a token done without running it when every output it recorded "
           "(its 'outputs') is still at its destination with the same checksum.", "flag", default=False),
    _pilot("log_cap", "Bytes of stdout/stderr kept per token (the head and the tail).", "int",
           default=defaults.LOG_CAP, minimum=1024),
    _pilot("quiet", "Print only the summary.", "flag", default=False, flags=("-q", "--quiet"), field=None),
)


def pilot_config(values: Mapping[str, Any]) -> PilotConfig:
    """The :class:`PilotConfig` of ``picas run``'s option values (pure).

    Values that are ``None`` leave the config's default in place.
    """
    fields = {opt.field: values[opt.name] for opt in PILOT_OPTIONS
              if opt.field and opt.name in values and values[opt.name] is not None}
    return PilotConfig(**fields)


def pilot_args(values: Mapping[str, Any], options: Sequence[Option] = PILOT_OPTIONS) -> list[str]:
    """``picas run`` arguments for the pilot options that were given (pure).

    A value of ``None`` was not given and is left out, so the pilot uses its
    own default; a false ``flag`` is left out too.  Durations are seconds
    (``--max-time=10800``).
    """
    args: list[str] = []
    for opt in options:
        value = values.get(opt.name)
        if value is None:
            continue
        if opt.kind == "switch":
            args.append(opt.long_flag if value else "--no-" + opt.long_flag[2:])
        elif opt.kind == "flag":
            if value:
                args.append(opt.long_flag)
        else:
            for item in (value if opt.multiple else [value]):
                args.append(f"{opt.long_flag}={_format(item)}")
    return args


def side_by_side(args: Sequence[str]) -> int:
    """How many payloads a ``picas run`` with these arguments runs at once: its ``--jobs`` times its ``--slots``.

    Schedulers ask for that many cores per pilot job unless told otherwise.
    ``args`` are as :func:`pilot_args` writes them (``--slots=8``).
    """
    count = 1
    for arg in args:
        for flag in ("--jobs=", "--slots="):
            if arg.startswith(flag) and arg[len(flag):].isdigit():
                count *= int(arg[len(flag):])
    return count


# --- click ------------------------------------------------------------------------------------


def _read_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {value}: {exc}") from None


def to_click(opt: Option, *, pass_through: bool = False) -> Any:
    """The click decorator of one :class:`Option`.

    ``pass_through`` serves ``submit``/``autopilot``: no default, so the
    pilot keeps its own for what the user did not give.
    """
    import click

    from picas.cli.options import DURATION

    kwargs: dict[str, Any] = {"help": opt.help, "multiple": opt.multiple}
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    default = None if pass_through else opt.default
    if opt.kind == "switch":
        kwargs.update(default=default, show_default=default is not None)
    elif opt.kind == "flag":
        kwargs.update(is_flag=True, default=bool(default) if not pass_through else None)
    else:
        types = {"text": None, "path": click.Path(path_type=Path),
                 "file-text": click.Path(exists=True, dir_okay=False),
                 "int": click.IntRange(min=opt.minimum), "duration": DURATION}
        if types[opt.kind] is not None:
            kwargs["type"] = types[opt.kind]
        if opt.kind == "file-text":
            kwargs["callback"] = lambda ctx, param, value: _read_text(value)
        if opt.flag_value is not None:
            kwargs.update(is_flag=False, flag_value=opt.flag_value)
        if default is not None and not opt.multiple:
            kwargs.update(default=_format(default) if opt.kind == "duration" else default, show_default=True)
    flags = opt.flags or (opt.long_flag,)
    return click.option(*flags, opt.name, **kwargs)


def click_options(options: Iterable[Option], *, pass_through: bool = False,
                  exclude: Iterable[str] = ()) -> Callable[[Callable], Callable]:
    """A decorator adding ``options`` (but those named in ``exclude``) to a click command, in order."""
    skip = set(exclude)
    decorators = [to_click(opt, pass_through=pass_through) for opt in options if opt.name not in skip]

    def decorate(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate
