"""PNG plots of a trace's per-layer drift and of a sweep's Pareto front.

matplotlib is an optional extra (`pip install 'rsim[plot]'`), imported only when drawing. Figures
are drawn on matplotlib's Agg canvas through the object API, so no global pyplot state or GUI
backend is touched.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from formats.errors import RsimError
from traces.pareto import pareto_front
from traces.reader import Trace, load

_NAME_WIDTH = 24
_ISOLATED_COLOUR, _PROPAGATED_COLOUR, _CLIPPED_COLOUR = "#4c72b0", "#dd8452", "#c44e52"


def _new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RsimError(
            "plotting needs matplotlib, which is not installed: pip install 'rsim[plot]'"
        ) from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, out_png: str | os.PathLike[str]) -> Path:
    out = Path(out_png)
    try:
        figure.savefig(out, dpi=110, format="png")
    except OSError as error:
        raise RsimError(f"cannot write plot '{out}': {error.strerror or error}") from None
    return out


def _short(name: str) -> str:
    return name if len(name) <= _NAME_WIDTH else "…" + name[-(_NAME_WIDTH - 1) :]


def _sqnr_bars(axes: Any, positions: list[float], values: list[float | None], **style: Any) -> None:
    """Bars of SQNR in dB; an infinite SQNR (exact layer) is drawn hatched up to the axis top
    and marked ∞, a missing value draws nothing."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = max([*finite, 0.0]) * 1.15 + 5.0
    for x, value in zip(positions, values, strict=True):
        if value is None:
            continue
        if math.isfinite(value):
            axes.bar(x, value, **style)
        else:
            height = top if value > 0 else min([*finite, 0.0]) - 5.0
            axes.bar(x, height, hatch="//", alpha=0.45, **style)
            axes.text(x, height, "∞" if value > 0 else "−∞", ha="center", va="bottom")
        style.pop("label", None)


def plot(
    trace: Trace | str | os.PathLike[str], out_png: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Per-layer SQNR (isolated and propagated) and clipped-share bars of `trace` (a loaded trace
    or a path), as a PNG."""
    if not isinstance(trace, Trace):
        trace = load(trace)
    layers = trace.layers
    if not layers:
        raise RsimError(f"trace '{trace.path}' has no layers to plot")
    figure = _new_figure(min(max(6.0, 0.5 * len(layers) + 2.0), 40.0), 7.0)
    sqnr_axes, clip_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    x = list(range(len(layers)))
    width = 0.4
    _sqnr_bars(
        sqnr_axes,
        [i - width / 2 for i in x],
        [r.isolated.get("sqnr_db") for r in layers],
        width=width,
        color=_ISOLATED_COLOUR,
        label="isolated",
    )
    _sqnr_bars(
        sqnr_axes,
        [i + width / 2 for i in x],
        [r.propagated.get("sqnr_db") for r in layers],
        width=width,
        color=_PROPAGATED_COLOUR,
        label="propagated",
    )
    sqnr_axes.set_ylabel("SQNR (dB)")
    sqnr_axes.legend(loc="upper right")
    sqnr_axes.grid(axis="y", alpha=0.3)
    sqnr_axes.set_title(title or f"Per-layer drift: {trace.path.name}")

    shares = [(i, r.propagated.get("clipped_share")) for i, r in enumerate(layers)]
    clipped = [(i, 100.0 * share) for i, share in shares if share is not None]
    bars = clip_axes.bar([i for i, _ in clipped], [c for _, c in clipped], width=0.6,
                         color=_CLIPPED_COLOUR)
    clip_axes.bar_label(bars, fmt="%.2g", fontsize=8)
    clip_axes.set_ylabel("clipped outputs,\npropagated (%)")
    clip_axes.set_ylim(0, max([c * 1.25 for _, c in clipped] + [1.0]))
    clip_axes.grid(axis="y", alpha=0.3)

    emulated = any(r.float_emulated for r in layers)
    clip_axes.set_xticks(x, [_short(r.name) + ("*" if r.float_emulated else "") for r in layers])
    clip_axes.tick_params(axis="x", labelrotation=60)
    for label in clip_axes.get_xticklabels():
        label.set_horizontalalignment("right")
    clip_axes.set_xlabel("layer" + ("   (* = float-emulated)" if emulated else ""))
    return _save(figure, out_png)


def plot_pareto(
    costs: Sequence[float],
    accuracies: Sequence[float],
    out_png: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    cost_label: str = "cost",
    accuracy_label: str = "accuracy",
    title: str = "Pareto front",
) -> Path:
    """Every design as a point (cost, accuracy), the Pareto front highlighted and labelled."""
    front = pareto_front(costs, accuracies)
    if labels is not None and len(labels) != len(costs):
        raise RsimError(f"pareto plot: {len(labels)} labels for {len(costs)} points")
    figure = _new_figure(7.0, 5.0)
    axes = figure.subplots()
    axes.scatter(costs, accuracies, color="#9a9a9a", s=18, label="design")
    front_costs = [costs[i] for i in front]
    front_accuracies = [accuracies[i] for i in front]
    axes.step(front_costs, front_accuracies, where="post", color=_CLIPPED_COLOUR, alpha=0.6)
    axes.scatter(front_costs, front_accuracies, color=_CLIPPED_COLOUR, s=36, label="Pareto front")
    if labels is not None:
        for i in front:
            axes.annotate(labels[i], (costs[i], accuracies[i]), fontsize=8,
                          xytext=(4, -10), textcoords="offset points")
    axes.set_xlabel(cost_label)
    axes.set_ylabel(accuracy_label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return _save(figure, out_png)
