"""See the pool: a self-contained HTML report (``picas report``) and a live dashboard (``picas dashboard``).

The pieces, each replaceable on its own:

* :mod:`picas.report.collect` reads the pool in bulk pages (and keeps a copy
  up to date from the changes feed, for the dashboard);
* :mod:`picas.report.attempts` reads each token's history into attempts;
* :mod:`picas.report.aggregates`, :mod:`~picas.report.timeline`,
  :mod:`~picas.report.failures` and :mod:`~picas.report.pilots` compute the
  data behind each plot (pure functions);
* :mod:`picas.report.build` puts them together as one JSON document;
* :mod:`picas.report.page` renders it as one offline HTML page with plotly.js
  inlined, and :mod:`picas.report.dashboard` serves that page live.
"""
