"""Charts as Plotly figures, embedded as JSON that the console's script draws (no inline script, works offline).

Invariants: every chart is a ``plotly.graph_objects.Figure`` (so a wrong property fails here, not silently in a
browser), in the console's one look (``LAYOUT``); ``embed`` writes a ``<div>`` and the figure's JSON in a
``<script type="application/json">`` whose text cannot close the element (``<`` escaped), so values coming from
devices can never become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from markupsafe import Markup

COLOURS = ("#1d4ed8", "#f59e0b", "#15803d", "#b91c1c", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
LAYOUT: dict[str, Any] = {
    "margin": {"l": 48, "r": 16, "t": 36, "b": 40}, "height": 320, "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff", "font": {"family": "system-ui, sans-serif", "size": 13, "color": "#17202c"},
    "colorway": list(COLOURS), "legend": {"orientation": "h", "y": -0.2}, "hovermode": "x unified",
    "xaxis": {"gridcolor": "#eef1f5"}, "yaxis": {"gridcolor": "#eef1f5", "rangemode": "tozero"},
}


def figure(traces: Sequence[Any], title: str, **layout: Any) -> go.Figure:
    return go.Figure(data=list(traces), layout={**LAYOUT, "title": {"text": title, "x": 0.01}, **layout})


def lines(title: str, x: Sequence[Any], series: dict[str, Sequence[Any]], unit: str = "",
          bars: bool = False) -> go.Figure:
    """One line (or bar group) per named series over the same ``x``."""
    trace = go.Bar if bars else go.Scatter
    extra = {} if bars else {"mode": "lines+markers", "line": {"width": 2}, "marker": {"size": 4}}
    return figure([trace(x=list(x), y=list(values), name=name, **extra) for name, values in series.items()], title,
                  yaxis={**LAYOUT["yaxis"], "title": {"text": unit}}, barmode="group" if bars else None)


def bars(title: str, labels: Sequence[str], values: Sequence[float], horizontal: bool = False) -> go.Figure:
    bar = go.Bar(y=list(labels), x=list(values), orientation="h") if horizontal else go.Bar(x=list(labels),
                                                                                          y=list(values))
    return figure([bar], title, hovermode="closest")


def funnel(title: str, stages: Sequence[str], values: Sequence[int]) -> go.Figure:
    return figure([go.Funnel(y=list(stages), x=list(values), textinfo="value+percent initial")], title,
                  hovermode="closest")


def embed(element_id: str, chart: go.Figure) -> Markup:
    data = pio.to_json(chart, validate=False, pretty=False).replace("<", "\\u003c")
    return Markup('<div class="chart" id="{0}"></div><script type="application/json" data-chart="{0}">').format(
        element_id) + Markup(data) + Markup("</script>")
