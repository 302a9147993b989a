"""Plotly figures for the app: accuracy vs size/latency with the Pareto front, training curves,
confusion matrices and class counts. Functions of records and plain data; no Streamlit.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.evaluate import pareto_front
from core.records import FineTuning, ModelResult, latency_column
from core.runtimes import ENGINES

ACCENT = "#0F766E"
MUTED = "#94A3B8"
HIGHLIGHT = "#F59E0B"
TUNED = "#7C3AED"  # fine-tuned models and their lift arrows
TUNED_BARS = "rgba(124, 58, 237, 0.45)"  # their error bars, lighter: they often overlap their source's


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
        + (f"<br>{lift_text(r.fine_tuning)}" if r.fine_tuning else "")
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
    kinds = [("recommended" if r.model == recommended else "fine-tuned" if r.fine_tuning else "models") for r in ok]
    for kind, name, color, size, symbol in (
        ("models", "models", ACCENT, 11, "circle"),
        ("fine-tuned", "fine-tuned (arrow: from its frozen model)", TUNED, 14, "diamond-open"),
        ("recommended", f"recommended: {recommended}", HIGHLIGHT, 18, "circle"),
    ):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            fig.add_trace(
                go.Scatter(
                    x=[xs[i] for i in idx],
                    y=[ys[i] for i in idx],
                    mode="markers+text",
                    name=name,
                    text=[_point_label(ok[i]) for i in idx],
                    textposition=[_text_position(ok[i]) for i in idx],
                    hovertext=[hover[i] for i in idx],
                    hoverinfo="text",
                    marker=dict(
                        color=color,
                        size=size,
                        symbol=symbol,
                        line=dict(
                            color=color if kind == "fine-tuned" else "white", width=2 if kind == "fine-tuned" else 1
                        ),
                    ),
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=[above[i] for i in idx],
                        arrayminus=[below[i] for i in idx],
                        color=TUNED_BARS if kind == "fine-tuned" else color,
                        thickness=1.5,
                        width=4,
                    ),
                )
            )
    if xs:
        low, high = math.log10(min(xs)), math.log10(max(xs))
        pad = max(0.15, (high - low) * 0.15)
        fig.update_xaxes(range=[low - pad, high + pad])
        _lift_arrows(fig, ok, xs, ys, shift=0.025 * (high - low + 2 * pad))
        bottom = min(y - b for y, b in zip(ys, below, strict=True))
        top = max(y + a for y, a in zip(ys, above, strict=True))
        margin = max(1.0, (top - bottom) * 0.15)
        fig.update_yaxes(range=[bottom - margin, min(100 + margin / 2, top + margin)])
    fig.update_xaxes(type="log", title=title)
    fig.update_yaxes(title="Test accuracy (%, 95% interval)")
    return _layout(fig, legend=BOTTOM_LEGEND, top=30, height=450)


def lift_text(tuning: FineTuning) -> str:
    """`fine-tuned from X: +2.1 points (95% CI +0.4 to +3.8)`, or that the frozen weights were kept."""
    low, high = (value * 100 for value in tuning.lift_ci)
    text = f"fine-tuned from {tuning.source}: {tuning.lift * 100:+.1f} points (95% CI {low:+.1f} to {high:+.1f})"
    return text + (", frozen weights kept" if tuning.kept_frozen else "")


def _point_label(result: ModelResult) -> str:
    """A point's text: the model, or for a fine-tuned one its lift (its source's label sits beside it)."""
    tuning = result.fine_tuning
    if not tuning:
        return result.model
    return "fine-tuned: kept frozen" if tuning.kept_frozen else f"fine-tuned {tuning.lift * 100:+.1f} pts"


def _text_position(result: ModelResult) -> str:
    """Above the point, but a fine-tuned model that did not gain has its label below: its source's is above."""
    return "bottom center" if result.fine_tuning and result.fine_tuning.lift <= 0 else "top center"


def _lift_arrows(fig: go.Figure, ok: list[ModelResult], xs: list[float], ys: list[float], shift: float) -> None:
    """An arrow from each fine-tuned model's frozen source up (or down) to it, `shift` to the right of their error
    bars (in log10 units: on a log x axis, Plotly places annotations at log10 of the value)."""
    where = {r.model: (x, y) for r, x, y in zip(ok, xs, ys, strict=True)}
    for r, x, y in zip(ok, xs, ys, strict=True):
        start = r.fine_tuning and where.get(r.fine_tuning.source)
        if not start or (start[0], start[1]) == (x, y):
            continue
        fig.add_annotation(
            x=math.log10(x) + shift,
            y=y,
            ax=math.log10(start[0]) + shift,
            ay=start[1],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowsize=1.2,
            arrowwidth=2,
            arrowcolor=TUNED,
            text="",
        )


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
    """The confusion matrix as a heat map, with a transparent marker on every cell so that a click selects it
    (each marker's `customdata` is its (true, predicted) pair)."""
    names = [html.escape(name) for name in classes]
    n = len(classes)
    true, predicted = np.divmod(np.arange(n * n), n)
    fig = go.Figure(
        go.Heatmap(
            z=confusion,
            x=names,
            y=names,
            colorscale="Teal",
            text=confusion,
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[names[p] for p in predicted],
            y=[names[t] for t in true],
            customdata=np.stack([true, predicted], axis=1),
            mode="markers",
            marker=dict(size=40, symbol="square", opacity=0),
            hovertemplate="true %{y}<br>predicted %{x}<br>click to see the images<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(title="predicted", side="bottom")
    fig.update_yaxes(title="true", autorange="reversed")
    return _layout(fig, height=max(260, 60 * n + 120))


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
