"""``python -m picas`` is the ``picas`` command (used by ``picas run -j N`` for its pilots)."""
from picas.cli import main

main(prog_name="picas")
