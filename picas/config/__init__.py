"""Where picas finds its connection settings, and how it writes them down.

A user may give the CouchDB URL, database and credentials in three places: on
the command line, in ``PICAS_*`` environment variables (handy in batch jobs),
or in a YAML file written once by ``picas init``.  :func:`resolve` merges them
in that order of precedence and remembers where each value came from, so that
``picas config show`` can answer "why is it talking to *that* server?".

Everything here is a pure function of its arguments (plus reading or writing
the one config file), so tests can pass their own environment and path and
never touch the real ``~/.config``.

The file looks like this (a flat file with the profile keys at the top level
is also accepted and read as the profile ``default``)::

    default_profile: default      # optional
    profiles:
      default: {url: http://127.0.0.1:5984, database: picas, username: admin, password: secret}
      cluster: {url: https://couch.example.org:6984, database: run42, verify: /etc/ssl/ca.pem}
"""

from picas.config.paths import CONFIG_ENV, config_path
from picas.config.picasconfig import PICASCONFIG_NAMES, import_picasconfig
from picas.config.profiles import DEFAULT_PROFILE, PROFILE_KEYS, TOP_LEVEL_KEYS, load_file, write_profile
from picas.config.settings import ENV_VARS, NOT_SET, PROFILE_ENV, REDACTED, Settings, resolve

__all__ = ["CONFIG_ENV", "DEFAULT_PROFILE", "ENV_VARS", "NOT_SET", "PICASCONFIG_NAMES", "PROFILE_ENV", "PROFILE_KEYS",
           "REDACTED", "TOP_LEVEL_KEYS", "Settings", "config_path", "import_picasconfig", "load_file", "resolve",
           "write_profile"]
