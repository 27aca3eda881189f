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


def _counts_axis(values: Sequence[Any]) -> dict[str, Any]:
    """An axis of counts: whole ticks when they are few (no "0.5 games")."""
    numbers = [value for value in values if isinstance(value, (int, float))]
    return {"dtick": 1, "tick0": 0} if numbers and max(numbers) <= 10 else {}


def lines(title: str, x: Sequence[Any], series: dict[str, Sequence[Any]], unit: str = "", bars: bool = False,
          x_range: tuple[Any, Any] | None = None) -> go.Figure:
    """One line (or bar group) per named series over the same ``x`` (bars: counts); ``x_range`` fixes the axis."""
    trace = go.Bar if bars else go.Scatter
    extra = {} if bars else {"mode": "lines+markers", "line": {"width": 2}, "marker": {"size": 4}}
    counts = _counts_axis([value for values in series.values() for value in values]) if bars else {}
    return figure([trace(x=list(x), y=list(values), name=name, **extra) for name, values in series.items()], title,
                  yaxis={**LAYOUT["yaxis"], "title": {"text": unit}, **counts}, barmode="group" if bars else None,
                  xaxis={**LAYOUT["xaxis"], **({"range": list(x_range)} if x_range else {})})


def bars(title: str, labels: Sequence[str], values: Sequence[float], horizontal: bool = False) -> go.Figure:
    """One bar per label: counts."""
    if horizontal:
        return figure([go.Bar(y=list(labels), x=list(values), orientation="h")], title, hovermode="closest",
                      xaxis={**LAYOUT["xaxis"], **_counts_axis(values)})
    return figure([go.Bar(x=list(labels), y=list(values))], title, hovermode="closest",
                  yaxis={**LAYOUT["yaxis"], **_counts_axis(values)})


def funnel(title: str, stages: Sequence[str], values: Sequence[int]) -> go.Figure:
    return figure([go.Funnel(y=list(stages), x=list(values), textinfo="value+percent initial")], title,
                  hovermode="closest")


def embed(element_id: str, chart: go.Figure) -> Markup:
    data = pio.to_json(chart, validate=False, pretty=False).replace("<", "\\u003c")
    return Markup('<div class="chart" id="{0}"></div><script type="application/json" data-chart="{0}">').format(
        element_id) + Markup(data) + Markup("</script>")
