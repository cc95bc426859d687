"""Applications shipped with picas; :mod:`picas.apps.picas_cli` is the 1.1.x ``picas-cli`` command."""
