"""The grid sandbox: everything a pilot needs on a worker node that has nothing but a Python 3.

:mod:`picas.sandbox.zipapp` packs picas and its pure-Python dependencies
into one runnable file; :mod:`picas.sandbox.deps` picks dependency versions
that run on the oldest worker Python (3.9); :mod:`picas.sandbox.directory`
lays out a sandbox directory: the zipapp, the start script, a scoped pilot
credential and the user's own files.  The sources of the start script live
in ``grid-sandbox/`` of the repository.
"""
