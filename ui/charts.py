"""Plotly figures for the app: accuracy vs size/latency with the Pareto front, training curves,
confusion matrices and class counts. Functions of records and plain data; no Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

from core.evaluate import pareto_front
from core.records import ModelResult, latency_column
from core.runtimes import ENGINES

ACCENT = "#0F766E"
MUTED = "#94A3B8"
HIGHLIGHT = "#F59E0B"


def _latency_in(engine: str) -> Callable[[ModelResult], float | None]:
    return lambda r: r.latency[engine].ms if r.latency.get(engine) else None


# The scatter's x axes: column -> (title, value of a result)
X_AXES: dict[str, tuple[str, Callable[[ModelResult], float | None]]] = {
    "params": ("Parameters (millions, log scale)", lambda r: r.params / 1e6),
    "size_mb": ("Model size (MB, float32, log scale)", lambda r: r.size_mb),
    "latency_ms": ("Latency on this host (ms per image, batch 1, log scale)", lambda r: r.latency_ms),
    **{
        latency_column(engine): (f"{label} latency on this host (ms/image, batch 1, log)", _latency_in(engine))
        for engine, label in ENGINES.items()
    },
}


TOP_LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1)
BOTTOM_LEGEND = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0)


def _layout(fig: go.Figure, legend: dict = TOP_LEGEND, top: int = 60, **kwargs) -> go.Figure:
    fig.update_layout(margin=dict(l=10, r=10, t=top, b=10), legend=legend, **kwargs)
    return fig


def tradeoff_scatter(results: list[ModelResult], x: str = "params", recommended: str | None = None) -> go.Figure:
    """Test accuracy, with its 95% interval as an error bar, against `x` (a key of `X_AXES`) on a log axis, with
    the Pareto front of the measured accuracies; models without `x` are left out."""
    title, value = X_AXES[x]
    ok = [r for r in results if value(r) is not None]
    xs = [value(r) for r in ok]
    ys = [r.test_accuracy * 100 for r in ok]
    below = [(r.test_accuracy - r.test_accuracy_ci[0]) * 100 for r in ok]
    above = [(r.test_accuracy_ci[1] - r.test_accuracy) * 100 for r in ok]
    hover = [
        f"<b>{r.model}</b><br>test accuracy {r.score_text()}<br>on {r.test_images:,} images<br>"
        f"{r.params / 1e6:.2f}M params, {r.size_mb:.1f} MB<br>"
        + (f"{r.latency_ms:.1f} ms/image in {ENGINES[r.runtime]}, " if r.latency_ms else "")
        + f"input {r.input_size} px"
        for r in ok
    ]
    fig = go.Figure()
    front = pareto_front(list(zip(xs, ys, strict=True)))
    if len(front) > 1:
        fig.add_trace(
            go.Scatter(
                x=[xs[i] for i in front],
                y=[ys[i] for i in front],
                mode="lines",
                name="Pareto front",
                line=dict(color=MUTED, dash="dash"),
                hoverinfo="skip",
            )
        )
    for name, chosen, color, size in (
        ("models", False, ACCENT, 11),
        (f"recommended: {recommended}", True, HIGHLIGHT, 18),
    ):
        idx = [i for i, r in enumerate(ok) if (r.model == recommended) == chosen]
        if idx:
            fig.add_trace(
                go.Scatter(
                    x=[xs[i] for i in idx],
                    y=[ys[i] for i in idx],
                    mode="markers+text",
                    name=name,
                    text=[ok[i].model for i in idx],
                    textposition="top center",
                    hovertext=[hover[i] for i in idx],
                    hoverinfo="text",
                    marker=dict(color=color, size=size, line=dict(color="white", width=1)),
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=[above[i] for i in idx],
                        arrayminus=[below[i] for i in idx],
                        color=color,
                        thickness=1.5,
                        width=4,
                    ),
                )
            )
    if xs:
        low, high = math.log10(min(xs)), math.log10(max(xs))
        pad = max(0.15, (high - low) * 0.15)
        fig.update_xaxes(range=[low - pad, high + pad])
        bottom = min(y - b for y, b in zip(ys, below, strict=True))
        top = max(y + a for y, a in zip(ys, above, strict=True))
        margin = max(1.0, (top - bottom) * 0.15)
        fig.update_yaxes(range=[bottom - margin, min(100 + margin / 2, top + margin)])
    fig.update_xaxes(type="log", title=title)
    fig.update_yaxes(title="Test accuracy (%, 95% interval)")
    return _layout(fig, legend=BOTTOM_LEGEND, top=30, height=450)


def history_figure(history: list[dict[str, Any]], metric: str = "val_accuracy") -> go.Figure:
    """One line per model of `metric` per epoch (accuracies in %)."""
    fig = go.Figure()
    scale = 100 if "accuracy" in metric else 1
    for model in dict.fromkeys(row["model"] for row in history):
        rows = [row for row in history if row["model"] == model and metric in row]
        fig.add_trace(
            go.Scatter(
                x=[row["epoch"] for row in rows],
                y=[row[metric] * scale for row in rows],
                mode="lines+markers",
                name=model,
            )
        )
    label = metric.replace("val_", "validation ").replace("_", " ")
    fig.update_xaxes(title="epoch", rangemode="tozero")
    fig.update_yaxes(title=label + (" (%)" if scale == 100 else ""))
    return _layout(fig, height=320, title=dict(text=label.capitalize(), y=0.98, yanchor="top"))


def confusion_figure(confusion: list[list[int]], classes: list[str]) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=confusion,
            x=classes,
            y=classes,
            colorscale="Teal",
            text=confusion,
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>",
        )
    )
    fig.update_xaxes(title="predicted", side="bottom")
    fig.update_yaxes(title="true", autorange="reversed")
    return _layout(fig, height=max(260, 60 * len(classes) + 120))


def class_counts_figure(counts: dict[str, dict[str, int]]) -> go.Figure:
    """Grouped bars: images per class, one bar per split."""
    fig = go.Figure()
    for split, per_class in counts.items():
        fig.add_trace(go.Bar(x=list(per_class), y=list(per_class.values()), name=split, text=list(per_class.values())))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="images")
    return _layout(fig, height=320)


def probabilities_figure(classes: list[str], probabilities: list[float]) -> go.Figure:
    order = sorted(range(len(classes)), key=lambda i: probabilities[i])
    fig = go.Figure(
        go.Bar(
            x=[probabilities[i] * 100 for i in order],
            y=[classes[i] for i in order],
            orientation="h",
            text=[f"{probabilities[i]:.1%}" for i in order],
            marker_color=ACCENT,
        )
    )
    fig.update_xaxes(title="probability (%)", range=[0, 105])
    return _layout(fig, height=max(160, 40 * len(classes) + 80))
