"""The report page: one HTML file with the plotting library, the style, the script and the data inlined.

The plots are drawn by plotly.js, taken from the ``plotly`` Python package
(``pip install 'picas[report]'``), which ships it as package data
(``plotly/package_data/plotly.min.js``, about 4.8 MB); ``PICAS_PLOTLY_JS`` may
name another plotly.js build instead (e.g. a partial bundle from npm).  Why
plotly.js: it draws every plot the report needs (stacked bars, step lines,
horizontal bars on a date axis for the timeline, histograms) with zoom, hover
and PNG export built in, works from a file with no network, and is the
library that Python's ``plotly`` package keeps installable.  Its cost is
size: it adds about 4.8 MB to every page (Bokeh's BokehJS is about 1.3 MB but
its Python package brings numpy, pillow, contourpy and tornado; Vega-Lite
needs three npm packages).  SVG plots of 10^5 marks are slow in any browser,
so the report never hands it that many: every series is binned and the
timeline is sampled (see :mod:`picas.report.timeline`).

Nothing in the page is fetched from anywhere: the page makes no request at
all, except, on the live dashboard, to the dashboard's own ``data.json``.
"""
from __future__ import annotations

import html
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

from picas.errors import PicasError

__all__ = ["PlottingLibraryMissing", "plotly_js", "plotly_path", "render"]

STATIC = Path(__file__).resolve().parent / "static"


class PlottingLibraryMissing(PicasError):
    """The plotting library (plotly.js) that the report page inlines is not installed."""

    exit_code = 20
    hint = "install it with: pip install 'picas[report]' (or set PICAS_PLOTLY_JS to a plotly.min.js)"


def plotly_path() -> Path:
    """Where plotly.min.js is: ``$PICAS_PLOTLY_JS``, else inside the installed ``plotly`` package (not imported)."""
    override = os.environ.get("PICAS_PLOTLY_JS")
    if override:
        path = Path(override)
        if not path.is_file():
            raise PlottingLibraryMissing(f"PICAS_PLOTLY_JS names {override}, which is not a file")
        return path
    spec = importlib.util.find_spec("plotly")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise PlottingLibraryMissing("the report page needs plotly.js, and the 'plotly' package is not installed")


@lru_cache(maxsize=2)
def _read(path: str, mtime: float) -> str:
    return Path(path).read_text(encoding="utf-8")


def plotly_js() -> str:
    path = plotly_path()
    return _read(str(path), path.stat().st_mtime)


def _script_safe(text: str) -> str:
    """Text that cannot end the <script> element it sits in."""
    return text.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def data_json(data: dict) -> str:
    """The report data as JSON that is safe inside a <script> element."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def render(data: dict, live: dict | None = None) -> str:
    """The whole page; ``live`` (``{"url": "data.json", "interval": 5}``) makes it poll for fresh data."""
    title = html.escape(str(data.get("meta", {}).get("title") or "picas report"))
    style = (STATIC / "report.css").read_text(encoding="utf-8")
    script = (STATIC / "report.js").read_text(encoding="utf-8")
    body = (STATIC / "body.html").read_text(encoding="utf-8")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        # The page may load nothing from anywhere; the dashboard's own data.json is the one exception.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' "
        "'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'self'\">\n",
        "<link rel=\"icon\" href=\"data:,\">\n",  # else browsers ask the dashboard for /favicon.ico
        f"<title>{title}</title>\n<style>\n{style}\n</style>\n</head>\n<body>\n",
        body,
        f"<script id=\"picas-data\" type=\"application/json\">{data_json(data)}</script>\n",
        f"<script id=\"picas-live\" type=\"application/json\">{data_json(live or {})}</script>\n",
        f"<script>\n{_script_safe(plotly_js())}\n</script>\n",
        f"<script>\n{_script_safe(script)}\n</script>\n",
        "</body>\n</html>\n",
    ])
