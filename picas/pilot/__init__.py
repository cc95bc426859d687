"""The pilot runtime: the loop that claims, runs and saves tokens, and its collaborators.

``loop`` composes the pieces: the claimer (``picas.core.claim``), the lease keeper, the
payload executor, the journal of unsaved results and the signal flags.
"""
