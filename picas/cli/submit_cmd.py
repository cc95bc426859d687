"""``picas submit slurm``, ``picas pilots`` and ``picas autopilot``: pilots on a Slurm cluster.

A thin layer: the batch script comes from :func:`picas.schedulers.slurm.build_sbatch_script`
(pure), the plan from :mod:`picas.schedulers.autopilot`, the job registry from
:mod:`picas.pool.registry`.  What lives here is turning options into those
calls, and one decision that only a command can make: how a pilot on a
compute node gets the connection settings (see :func:`pilot_environment`).
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import click

from picas.pool import registry as pilot_jobs
from picas.schedulers import slurm
from picas.cli.options import connection_options, make_client
from picas.pool.tokens import parse_duration
from picas.config import Settings, config_path, load_file, write_profile
from picas.errors import InvalidInput, PicasError

#: Where the private pilot profile goes, next to the user's config file, unless --pilot-config says.
PILOT_CONFIG_NAME = "slurm-pilots.yml"


class DurationText(click.ParamType):
    """A duration as ``picas run`` reads it (``90``, ``15m``, ``2h``), checked here and passed on as text."""

    name = "DURATION"

    def convert(self, value, param, ctx):  # noqa: D102 - click API
        try:
            parse_duration(str(value))
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


DURATION_TEXT = DurationText()


# --- how the pilot finds the server ------------------------------------------------------


def _strip_credentials(url: str) -> tuple[str, str | None, str | None]:
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), user, password


def pilot_profile_name(url: str, database: str, username: str | None) -> str:
    """A stable profile name per (server, database, user), readable and without odd characters."""
    digest = hashlib.sha1(f"{url}|{database}|{username or ''}".encode()).hexdigest()[:8]
    return "pilot-" + re.sub(r"[^A-Za-z0-9_.-]", "-", database)[:40] + "-" + digest


def pilot_environment(settings: Settings, pilot_config: Path | None = None, *,
                      write: bool = True) -> tuple[dict[str, str], str | None]:
    """The variables a pilot job exports to reach the server, and a note for the user.

    A batch script is stored by Slurm (``scontrol write batch_script``), so no
    password is ever written into it.  The script exports ``PICAS_HOST_URL``
    (without ``user:pw@``), ``PICAS_DATABASE`` and ``PICAS_USERNAME``, and
    points ``PICAS_CONFIG``/``PICAS_PROFILE`` at a config file that holds the
    password with mode 0600:

    * when the password came from the user's config file, that same file and
      profile (the user already keeps it private);
    * when it came only from ``PICAS_PASSWORD``, ``--password`` or the URL,
      a private profile written for the pilots into ``pilot_config``
      (default: ``slurm-pilots.yml`` next to the user's config file; it must be
      on a file system the compute nodes see, as home directories are).  The
      environment of the submitting shell is not a safe carrier: jobs started
      later, e.g. by the autopilot from cron, do not have it.

    ``write=False`` (for ``--dry-run``) computes the same answer without
    writing anything.  Returns the variables and a one-line note when a
    profile was (or would be) written.
    """
    clean_url, url_user, url_password = _strip_credentials(settings.require_url())
    database = settings.require_database()
    username = settings.username or url_user
    password = settings.password if settings.password is not None else url_password
    env = {"PICAS_HOST_URL": clean_url, "PICAS_DATABASE": database}
    if username:
        env["PICAS_USERNAME"] = username
    if settings.verify is False:
        env["PICAS_VERIFY"] = "false"
    elif isinstance(settings.verify, str):
        env["PICAS_VERIFY"] = os.path.abspath(settings.verify)
    user_config = Path(settings.config_file or config_path()).expanduser().absolute()
    source = settings.sources.get("password", "")
    if password is None:
        if user_config.exists():
            env["PICAS_CONFIG"], env["PICAS_PROFILE"] = str(user_config), settings.profile
        return env, None
    if source.startswith("file") and url_password is None:
        env["PICAS_CONFIG"], env["PICAS_PROFILE"] = str(user_config), settings.profile
        return env, None
    target = Path(pilot_config or user_config.parent / PILOT_CONFIG_NAME).expanduser().absolute()
    profile = pilot_profile_name(clean_url, database, username)
    values = {"url": clean_url, "database": database, "username": username, "password": password,
              "verify": settings.verify}
    env["PICAS_CONFIG"], env["PICAS_PROFILE"] = str(target), profile
    stored = load_file(target).get("profiles", {}).get(profile)
    if stored == {key: value for key, value in values.items() if value is not None}:
        return env, None  # already there (every autopilot round from cron): no rewrite, no note
    if write:
        write_profile(target, profile, values)
    verb = "wrote" if write else "would write"
    return env, f"{verb} the password for the pilots into {target} (profile {profile}, mode 0600)"


# --- shared options ----------------------------------------------------------------------


def _apply(options: list[Callable]) -> Callable:
    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


#: Slurm resources and script shape, shared by ``submit slurm`` and ``autopilot``.
sbatch_options = _apply([
    click.option("--time", metavar="TIME", help="Walltime per pilot, sbatch syntax (e.g. 1:00:00, 2-00:00:00)."),
    click.option("--partition", metavar="NAME", help="Slurm partition."),
    click.option("--account", metavar="NAME", help="Account charged for the pilots."),
    click.option("--qos", metavar="NAME", help="Quality of service."),
    click.option("--cpus-per-task", type=click.IntRange(min=1), help="Cores per pilot."),
    click.option("--mem", metavar="SIZE", help="Memory per pilot (e.g. 4G)."),
    click.option("--job-name", default="picas-pilot", show_default=True, help="Slurm job name."),
    click.option("--output", default="picas-pilot-%A_%a.out", show_default=True,
                 help="Log file pattern (%A array job, %a task), relative to the current directory."),
    click.option("--signal-grace", type=click.IntRange(min=0), default=120, show_default=True,
                 help="Seconds before the walltime at which Slurm sends USR1, so the pilot gives its "
                      "token back cleanly; 0 asks for no warning."),
    click.option("--sbatch-line", "sbatch_lines", multiple=True, metavar="TEXT",
                 help="Extra #SBATCH line, e.g. '--constraint=gpu' (repeatable)."),
    click.option("--setup", "setup", multiple=True, metavar="TEXT",
                 help="Shell line run before the pilot, e.g. 'module load python' (repeatable)."),
    click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="Your own batch script template (see examples/slurm-pilot.sh)."),
    click.option("--picas-command", default="picas", show_default=True,
                 help="How the job starts picas, e.g. 'python3 -m picas' or a venv's bin/picas."),
    click.option("--pilot-config", type=click.Path(dir_okay=False, path_type=Path),
                 help="Private (0600) config file for the pilots' password when it does not come from "
                      "your config file [default: slurm-pilots.yml next to it]."),
])

#: Options passed through to ``picas run`` in the batch script.
pilot_options = _apply([
    click.option("--max-tasks", type=click.IntRange(min=1), help="Each pilot stops after this many tokens."),
    click.option("--max-time", type=DURATION_TEXT, help="Each pilot stops taking tokens after this long."),
    click.option("--token-timeout", type=DURATION_TEXT, help="Stop a payload after this long (token to error)."),
    click.option("--heartbeat", type=DURATION_TEXT, help="Lease renewal interval of the pilots."),
    click.option("--scrub-expired", "scrub_expired", type=DURATION_TEXT, is_flag=False, flag_value="300",
                 default=None, help="Pilots also reset tokens with expired leases, this often."),
    click.option("--prefetch", type=click.IntRange(min=1), help="Tokens claimed per request."),
    click.option("--retries", type=click.IntRange(min=0), help="Times a failed token is put back."),
])

_PILOT_FLAGS = ("max_tasks", "max_time", "token_timeout", "heartbeat", "scrub_expired", "prefetch", "retries")


def pilot_args(values: dict[str, Any]) -> list[str]:
    """``picas run`` arguments for the pilot options that were given (pure)."""
    args = []
    for name in _PILOT_FLAGS:
        value = values.get(name)
        if value is not None:
            args.append(f"--{name.replace('_', '-')}={value}")
    return args


def base_options(values: dict[str, Any], env: dict[str, str], array: int = 1) -> slurm.SbatchOptions:
    """SbatchOptions from the shared options (pure)."""
    return slurm.SbatchOptions(
        array=array, time=values.get("time"), partition=values.get("partition"), account=values.get("account"),
        qos=values.get("qos"), cpus_per_task=values.get("cpus_per_task"), mem=values.get("mem"),
        job_name=values["job_name"], output=values["output"], signal_grace=values["signal_grace"],
        extra_sbatch=list(values.get("sbatch_lines") or ()), setup=list(values.get("setup") or ()),
        env=env, picas_command=values["picas_command"])


def _template(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None else None


# --- picas submit slurm ----------------------------------------------------------------


@click.group("submit")
def submit() -> None:
    """Submit pilots to a batch scheduler (Slurm)."""


@submit.command("slurm")
@connection_options
@click.option("--array", "array", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of pilots: one sbatch --array task each.")
@sbatch_options
@click.option("--design-doc", default="Monitor", show_default=True, help="Design document the pilots drain.")
@click.option("--view", default="todo", show_default=True, help="View the pilots take tokens from.")
@pilot_options
@click.option("--dry-run", is_flag=True, help="Print the batch script; submit and record nothing.")
@click.option("--parsable", is_flag=True, help="Print only the job id.")
def submit_slurm(settings: Settings, array: int, design_doc: str, view: str, dry_run: bool, parsable: bool,
                 **values: Any) -> None:
    """Submit an array of pilots with sbatch; each drains the pool until it is empty.

    Every option becomes an #SBATCH line.  Slurm sends the pilots USR1
    --signal-grace seconds before the walltime; a pilot then gives its token
    back to todo and exits.  The job id is printed and kept in the database,
    for 'picas pilots list', 'picas status' and 'picas pilots cancel'.  No
    password is written into the script (see --pilot-config).

    \b
    Examples:
      picas submit slurm --array 10 --time 4:00:00 --partition normal
      picas submit slurm --array 4 --design-doc MultiCore --cpus-per-task 4 --mem 8G \\
          --setup 'module load Python' --setup 'source ~/venv/bin/activate'
      picas submit slurm --array 2 --dry-run > my-pilot.sh    # then edit and use --template
    """
    env, note = pilot_environment(settings, values.pop("pilot_config"), write=not dry_run)
    opts = base_options(values, env, array)
    opts.pilot_args = ["--design-doc", design_doc, "--view", view, *pilot_args(values)]
    script = slurm.build_sbatch_script(opts, _template(values["template"]))
    if dry_run:
        click.echo(script, nl=False)
        if note:
            click.echo(f"# dry run: {note}", err=True)
        return
    client = make_client(settings)
    pilot_jobs.jobs(client)  # a wrong URL, database or password fails here, before any pilot is queued
    job_id = slurm.submit(script)  # SchedulerError carries sbatch's own message; nothing is recorded then
    if note and not parsable:
        click.echo(note, err=True)
    try:
        pilot_jobs.record(client, [pilot_jobs.entry_for(job_id, opts, design_doc, view)])
    except PicasError as exc:
        click.echo(job_id if parsable else f"Submitted pilot job {job_id}", err=False)
        raise type(exc)(f"job {job_id} was submitted but could not be recorded in the database: {exc}") from None
    if parsable:
        click.echo(job_id)
    else:
        click.echo(f"Submitted pilot job {job_id}: {array} pilot{'s' if array != 1 else ''} for "
                   f"{pilot_jobs.class_name(design_doc, view)}")
