"""How a pilot started by a batch system gets its connection settings and password.

A batch job does not inherit the submitting shell: it starts later, on
another node, maybe from cron (the autopilot).  And whatever a scheduler is
given is stored where others may read it (a batch system keeps the batch
script in its spool; a job's sandbox travels through servers).  So
a pilot's password is never written into what is submitted.  What is
submitted exports only where the server is and which file holds the
password (:func:`pilot_environment`); that file is private (mode 0600) and on
a file system the nodes see.

This is library code so that every scheduler backend, and the classic API,
hands the pilots their credentials the same way.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from picas.config import Settings, config_path, load_file, write_profile
from picas.support.credentials import split_credentials

__all__ = ["PilotAccess", "pilot_environment", "pilot_profile_name", "pilots_config_name"]


def pilots_config_name(scheduler: str) -> str:
    """The default file name of the private pilot profiles of one scheduler: ``slurm-pilots.yml``."""
    return f"{scheduler}-pilots.yml"


@dataclass(frozen=True)
class PilotAccess:
    """What a pilot job exports to reach the pool, and what a person should be told about it.

    ``env`` holds ``PICAS_HOST_URL`` (without ``user:pw@``), ``PICAS_DATABASE``,
    ``PICAS_USERNAME``, ``PICAS_VERIFY`` when it is not the default, and
    ``PICAS_CONFIG``/``PICAS_PROFILE`` naming the file that holds the
    password.  ``note`` is one line when a private profile was (or, in a dry
    run, would be) written, else ``None``.  ``config_file`` is the file the
    password is read from, if any: a backend without a shared file system
    (the grid) must ship it with the job.
    """

    env: dict[str, str]
    note: str | None = None
    config_file: Path | None = None


def pilot_profile_name(url: str, database: str, username: str | None) -> str:
    """A stable profile name per (server, database, user), readable and without odd characters."""
    digest = hashlib.sha1(f"{url}|{database}|{username or ''}".encode()).hexdigest()[:8]
    return "pilot-" + re.sub(r"[^A-Za-z0-9_.-]", "-", database)[:40] + "-" + digest


def pilot_environment(settings: Settings, pilot_config: Path | None = None, *, write: bool = True,
                      config_name: str = "pilots.yml", credential: Path | None = None) -> PilotAccess:
    """The variables a pilot job exports to reach the server, without any password.

    With a ``credential`` file (``picas credentials create``: a user scoped
    to one database) the pilots log in as that user, and nothing of the
    operator's own settings is written anywhere.  Otherwise, where the
    password comes from decides where the pilots read it:

    * from the user's config file: that same file and profile (the user
      already keeps it private);
    * only from ``PICAS_PASSWORD``, ``--password`` or the URL: a private
      profile written for the pilots into ``pilot_config`` (default:
      ``config_name`` next to the user's config file; the commands name it
      after the scheduler, see :func:`pilots_config_name`).  The environment of
      the submitting shell is no safe carrier: jobs started later, e.g. by
      the autopilot from cron, do not have it.

    ``write=False`` (for ``--dry-run``) computes the same answer without
    writing anything.  An unchanged profile is not written again (every
    autopilot round from cron would otherwise rewrite it).
    """
    if credential is not None:
        from picas.pool.credentials import pilot_env

        return PilotAccess(pilot_env(credential), None, Path(credential).expanduser().absolute())
    clean_url, url_user, url_password = split_credentials(settings.require_url())
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
            return PilotAccess(env, None, user_config)
        return PilotAccess(env)
    if source.startswith("file") and url_password is None:
        env["PICAS_CONFIG"], env["PICAS_PROFILE"] = str(user_config), settings.profile
        return PilotAccess(env, None, user_config)
    target = Path(pilot_config or user_config.parent / config_name).expanduser().absolute()
    profile = pilot_profile_name(clean_url, database, username)
    values = {"url": clean_url, "database": database, "username": username, "password": password,
              "verify": settings.verify}
    env["PICAS_CONFIG"], env["PICAS_PROFILE"] = str(target), profile
    stored = load_file(target).get("profiles", {}).get(profile)
    if stored == {key: value for key, value in values.items() if value is not None}:
        return PilotAccess(env, None, target)
    if write:
        write_profile(target, profile, values)
    verb = "wrote" if write else "would write"
    return PilotAccess(env, f"{verb} the password for the pilots into {target} (profile {profile}, mode 0600)",
                       target)
