"""The report's plots, rendered to PNG bytes with matplotlib's object API (no pyplot, no global state).

Each function takes plain arrays or DataFrames and returns the PNG file's bytes; the
report stage writes them under ``plots/`` and embeds them into ``index.html``. Text that
comes from data (dataset, detector, attack names) goes through :func:`label`, which keeps
matplotlib from reading ``$…$`` as math or hiding ``_``-prefixed legend entries.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # a bare Figure renders through Agg on savefig: no pyplot, no backend switch
from matplotlib.patches import Rectangle
from scipy.stats import norm

from addgp.metrics import ECE_BINS, bayes_threshold, compute_metrics, det_curve, reliability_bins
from tasks.report.format import HEAT_LIGHTNESS, HEAT_SATURATION, heat_hue

DPI = 110
_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#ad494a",
    "#637939",
    "#e7ba52",
    "#7b4173",
    "#3182bd",
)
BONAFIDE_COLOR, SPOOF_COLOR = "#2a9d8f", "#e76f51"
_DET_TICKS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9]
_DET_LIMITS = (0.0008, 0.95)
_MAX_DET_POINTS = 4000


def label(text, limit: int = 32) -> str:
    """Data text made safe for matplotlib: ``$`` escaped, a leading ``_`` kept visible, long names cut."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def color(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _titled_png(fig: Figure, title: str, top_inch: float = 0.1) -> bytes:
    """Every plot's title: left-aligned, ``top_inch`` below the top edge whatever the figure's height."""
    fig.suptitle(title, fontsize=10, x=0.02, y=1 - top_inch / fig.get_figheight(), ha="left", va="top")
    return _png(fig)


def _new_figure(
    width: float, height: float, left: float = 0.7, right: float = 0.15, bottom: float = 0.55, top: float = 0.35
) -> Figure:
    """A figure with fixed margins in inches.

    Fixed margins instead of matplotlib's constrained layout: labels are cut to known
    lengths, and the layout solver would double the rendering time of every plot.
    """
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    return fig


def _text_inches(texts, fontsize: float = 8) -> float:
    """Rough width of the longest text (DejaVu Sans averages ~0.6 em per character)."""
    longest = max((len(str(t)) for t in texts), default=0)
    return longest * 0.6 * fontsize / 72


def _pct_ticks(values: Sequence[float]) -> list[str]:
    return [f"{100 * v:g}" for v in values]


# ---------------------------------------------------------------- per corpus


def det_plot(sets: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """DET curves (normal-deviate axes) of several detectors on one corpus; EER points marked.

    ``sets`` maps detector -> (scores, labels); the legend gives each detector's EER.
    """
    fig = _new_figure(5.2, 4.2)
    ax = fig.add_subplot()
    lo, hi = _DET_LIMITS
    for i, (name, (scores, labels)) in enumerate(sets.items()):
        curve = det_curve(scores, labels)
        eer = compute_metrics(scores, labels)["eer"]
        fa, miss = np.clip(curve.fa, lo / 2, 1 - lo / 2), np.clip(curve.miss, lo / 2, 1 - lo / 2)
        if fa.size > _MAX_DET_POINTS:
            keep = np.unique(np.linspace(0, fa.size - 1, _MAX_DET_POINTS).astype(int))
            fa, miss = fa[keep], miss[keep]
        ax.plot(norm.ppf(fa), norm.ppf(miss), color=color(i), lw=1.8, label=f"{label(name)}  (EER {100 * eer:.1f} %)")
        point = norm.ppf(np.clip(eer, lo, hi))
        ax.plot([point], [point], "o", color=color(i), ms=5, mec="white", mew=0.8)
    ticks = norm.ppf(_DET_TICKS)
    ax.plot(norm.ppf([lo, hi]), norm.ppf([lo, hi]), color="#999", lw=0.8, ls=":", zorder=0)
    ax.set_xticks(ticks, _pct_ticks(_DET_TICKS), fontsize=8)
    ax.set_yticks(ticks, _pct_ticks(_DET_TICKS), fontsize=8)
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.set_xlabel("false acceptance: spoof accepted (%)", fontsize=9)
    ax.set_ylabel("miss: bona fide rejected (%)", fontsize=9)
    ax.grid(True, color="#e5e5e5", lw=0.6)
    ax.set_title(f"DET · {label(title, 48)}", fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper right", frameon=True, framealpha=0.9)
    return _png(fig)


def reliability_plot(sets: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """Reliability diagram: mean P(spoof) per bin against the observed spoof fraction, one line per detector.

    ``sets`` maps detector -> (p_spoof, is_spoof); marker area grows with the bin's count.
    """
    fig = _new_figure(5.2, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls=":", label="perfect calibration")
    for i, (name, (p_spoof, is_spoof)) in enumerate(sets.items()):
        bins = reliability_bins(p_spoof, is_spoof, ECE_BINS)
        used = bins[bins["count"] > 0]
        ece = float((used["count"] * (used["mean_p_spoof"] - used["frac_spoof"]).abs()).sum() / used["count"].sum())
        ax.plot(
            used["mean_p_spoof"],
            used["frac_spoof"],
            "-",
            color=color(i),
            lw=1.4,
            label=f"{label(name)}  (ECE {ece:.3f})",
        )
        sizes = 12 + 120 * np.sqrt(used["count"] / used["count"].max())
        ax.scatter(
            used["mean_p_spoof"], used["frac_spoof"], s=sizes, color=color(i), edgecolor="white", lw=0.6, zorder=3
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted P(spoof), mean per bin", fontsize=9)
    ax.set_ylabel("observed fraction spoof", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e5e5", lw=0.6)
    ax.set_title(f"Reliability · {label(title, 48)}", fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    return _png(fig)


def histogram_plot(sets: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    """Score (LLR) histograms per class, one panel per detector, on a shared axis.

    ``sets`` maps detector -> (scores, labels). Scores beyond the 0.5/99.5 percentiles are
    counted in the edge bins. The solid line is LLR 0 (P(spoof) = 0.5), the dashed line the
    Bayes threshold of act DCF.
    """
    names = list(sets)
    fig = _new_figure(5.2, 1.2 + 1.6 * len(names), top=0.5)
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False, gridspec_kw={"hspace": 0.35})[:, 0]
    everything = np.concatenate([np.asarray(s, dtype=float) for s, _ in sets.values()])
    lo, hi = np.percentile(everything, [0.5, 99.5])
    lo, hi = min(lo, bayes_threshold() - 0.5, -0.5), max(hi, 0.5)
    edges = np.linspace(lo, hi, 41)
    for ax, name in zip(axes, names):
        scores, labels = sets[name]
        scores = np.clip(np.asarray(scores, dtype=float), lo, hi)
        bona = np.asarray(labels) == "bonafide"
        ax.hist(
            scores[bona],
            bins=edges,
            density=True,
            histtype="stepfilled",
            color=BONAFIDE_COLOR,
            alpha=0.5,
            label=f"bona fide ({bona.sum()})",
        )
        ax.hist(
            scores[~bona],
            bins=edges,
            density=True,
            histtype="stepfilled",
            color=SPOOF_COLOR,
            alpha=0.5,
            label=f"spoof ({(~bona).sum()})",
        )
        ax.axvline(0.0, color="#333", lw=0.9)
        ax.axvline(bayes_threshold(), color="#333", lw=0.9, ls="--")
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_title(label(name, 40), fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    axes[-1].set_xlabel("score (LLR; higher = more bona fide)", fontsize=9)
    return _titled_png(fig, f"Scores by class · {label(title, 48)}", top_inch=0.12)


# ---------------------------------------------------------------- across corpora


def _heat_color(value: float) -> tuple[float, float, float, float]:
    """The tables' heat scale (format.heat_hue) as RGBA; grey where there is no value."""
    if not np.isfinite(value):
        return (0.93, 0.93, 0.93, 1.0)
    return (*colorsys.hls_to_rgb(heat_hue(value) / 360, HEAT_LIGHTNESS, HEAT_SATURATION), 1.0)


def heatmap_plot(
    values: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    averages: Sequence[float],
    in_domain: np.ndarray | None = None,
    average_label: str = "average",
) -> bytes:
    """The cross-dataset EER matrix as a heatmap: corpora, then the average column set apart.

    ``values`` is (rows, corpora) EER as fractions (NaN = not evaluated); colours run from
    green (0 %) to red (50 % and above); outlined cells are in-domain.
    """
    values = np.asarray(values, dtype=float)
    n_rows, n_cols = values.shape
    columns = list(column_labels) + [average_label]
    rows = [label(r, 40) for r in row_labels]
    left = 0.3 + _text_inches(rows)
    bottom = 0.3 + 0.5 * _text_inches([label(c, 18) for c in columns])  # labels at 30 degrees
    width = min(max(left + 0.2 + 0.85 * (n_cols + 1.4), 6.0), 18)
    fig = _new_figure(width, bottom + 0.45 + 0.55 * n_rows, left=left, right=0.2, bottom=bottom, top=0.45)
    ax = fig.add_subplot()
    xs = list(range(n_cols)) + [n_cols + 0.4]
    for r in range(n_rows):
        row = list(values[r]) + [averages[r]]
        for c, (x, value) in enumerate(zip(xs, row)):
            face = _heat_color(value)
            ax.add_patch(Rectangle((x - 0.5, r - 0.5), 1, 1, facecolor=face, edgecolor="white", lw=1.5))
            text = "–" if not np.isfinite(value) else f"{100 * value:.1f}"
            weight = "bold" if c == n_cols else "normal"
            luminance = 0.2126 * face[0] + 0.7152 * face[1] + 0.0722 * face[2]
            ax.text(
                x,
                r,
                text,
                ha="center",
                va="center",
                fontsize=9,
                weight=weight,
                color="#111" if luminance > 0.45 else "white",
            )
            if in_domain is not None and c < n_cols and in_domain[r, c]:
                outline = "#111" if luminance > 0.45 else "white"
                ax.add_patch(
                    Rectangle((x - 0.44, r - 0.44), 0.88, 0.88, fill=False, edgecolor=outline, lw=1.6, ls="--")
                )
    ax.set_xlim(-0.5, xs[-1] + 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xticks(xs, [label(c, 18) for c in columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), rows, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _titled_png(fig, "EER (%) · train setting × eval corpus · dashed: in-domain")


def selective_plot(curves: pd.DataFrame, target_error: float, datasets: Sequence[str]) -> bytes:
    """Error on the decided utterances against coverage, one panel per detector, one line per corpus."""
    detectors = list(pd.unique(curves["detector"]))
    fig = _new_figure(min(max(4.0 * len(detectors) + 1.0, 6.5), 16), 3.6, top=0.6)
    axes = fig.subplots(1, len(detectors), sharey=True, squeeze=False, gridspec_kw={"wspace": 0.08})[0]
    dataset_index = {d: i for i, d in enumerate(datasets)}
    for ax, detector in zip(axes, detectors):
        mine = curves[curves["detector"] == detector]
        for dataset, curve in mine.groupby("dataset", sort=False):
            ax.plot(
                curve["coverage"],
                curve["error"],
                color=color(dataset_index.get(dataset, 0)),
                lw=1.5,
                label=label(dataset, 24),
            )
        ax.axhline(target_error, color="#333", lw=0.9, ls="--")
        ax.set_xlim(1.0, 0.0)
        ax.set_xlabel("coverage (share decided)", fontsize=9)
        ax.set_title(label(detector, 40), fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(True, color="#e5e5e5", lw=0.6)
    axes[0].set_ylabel("error on decided utterances", fontsize=9)
    axes[-1].legend(fontsize=7, loc="upper right", framealpha=0.9)
    return _titled_png(fig, f"Selective prediction (dashed: target error {100 * target_error:g} %)")


def trend_plot(
    trends: pd.DataFrame, datasets: Sequence[str], average_label: str, current_run: str | None = None
) -> bytes:
    """EER per corpus across published reports (run-id order), one panel per detector; the average in black."""
    detectors = list(pd.unique(trends["detector"]))
    runs = list(pd.unique(trends["run_id"]))
    position = {r: i for i, r in enumerate(runs)}
    step = max(1, -(-len(runs) // 12))  # at most ~12 run labels
    run_labels = [label(r, 24) for r in runs[::step]]
    names = [label(d, 24) for d in pd.unique(trends["dataset"])]
    right = 0.35 + _text_inches(names, 7)
    left = max(0.75, 0.15 + 0.87 * _text_inches(run_labels, 7))  # the first label, at 30 degrees, reaches left
    bottom = 0.35 + 0.5 * _text_inches(run_labels, 7)
    panel = 2.2
    fig = _new_figure(
        left + right + 7.0,
        bottom + 0.55 + (panel + 0.35) * len(detectors),
        left=left,
        right=right,
        bottom=bottom,
        top=0.55,
    )
    axes = fig.subplots(len(detectors), 1, sharex=True, sharey=True, squeeze=False, gridspec_kw={"hspace": 0.3})[:, 0]
    dataset_index = {d: i for i, d in enumerate(datasets)}
    for ax, detector in zip(axes, detectors):
        mine = trends[trends["detector"] == detector]
        for dataset, series in mine.groupby("dataset", sort=False):
            xs = series["run_id"].map(position)
            if dataset == average_label:
                ax.plot(xs, 100 * series["eer"], "-o", color="#111", lw=2.4, ms=4, label=average_label, zorder=3)
            else:
                ax.plot(
                    xs,
                    100 * series["eer"],
                    "-o",
                    color=color(dataset_index.get(dataset, len(dataset_index))),
                    lw=1.2,
                    ms=3,
                    label=label(dataset, 24),
                )
        if current_run in position:
            ax.axvline(position[current_run], color="#bbb", lw=0.8, ls=":")
        ax.set_title(label(detector, 40), fontsize=9, loc="left")
        ax.set_ylabel("EER (%)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, color="#e5e5e5", lw=0.6)
    axes[-1].set_xticks(range(0, len(runs), step), run_labels, rotation=30, ha="right", fontsize=7)
    axes[-1].set_xlim(-0.3, len(runs) - 0.7)
    seen: dict = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(name, handle)
    fig.legend(
        list(seen.values()),
        list(seen.keys()),
        fontsize=7,
        loc="center right",
        bbox_to_anchor=(1 - 0.05 / fig.get_figwidth(), 0.5),
        framealpha=0.9,
    )
    return _titled_png(fig, "EER across published reports (run-id order; dotted: this run)")


def robustness_plot(
    eer: np.ndarray, delta: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], worst: np.ndarray
) -> bytes:
    """EER per detector (rows) under each condition (columns, clean first), coloured by the increase against clean.

    ``eer`` and ``delta`` are (rows, conditions) fractions (NaN = not scored); each cell shows
    the EER and the change in percentage points; ``worst`` (bool, same shape) outlines each
    detector's worst condition. Colours run from white (no change or better) to red (+25 pp
    and more), so the worst condition of every detector stands out at a glance.
    """
    eer, delta = np.asarray(eer, dtype=float), np.asarray(delta, dtype=float)
    n_rows, n_cols = eer.shape
    rows = [label(r, 40) for r in row_labels]
    columns = [label(c, 18) for c in column_labels]
    left = 0.3 + _text_inches(rows)
    bottom = 0.3 + 0.5 * _text_inches(columns)
    width = min(max(left + 0.2 + 1.0 * n_cols, 6.0), 18)
    fig = _new_figure(width, bottom + 0.45 + 0.6 * n_rows, left=left, right=0.2, bottom=bottom, top=0.45)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Reds"]
    for r in range(n_rows):
        for c in range(n_cols):
            change = delta[r, c]
            face = cmap(min(max(change / 0.25, 0.0), 1.0) * 0.85) if np.isfinite(change) else (0.93, 0.93, 0.93, 1.0)
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=face, edgecolor="white", lw=1.5))
            luminance = 0.2126 * face[0] + 0.7152 * face[1] + 0.0722 * face[2]
            text = "–" if not np.isfinite(eer[r, c]) else f"{100 * eer[r, c]:.1f}"
            if np.isfinite(change) and column_labels[c] != "clean":
                text += f"\n{100 * change:+.1f} pp"
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="#111" if luminance > 0.45 else "white",
                weight="bold" if worst[r, c] else "normal",
            )
            if worst[r, c]:
                ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, edgecolor="#111", lw=2.0))
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xticks(range(n_cols), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), rows, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _titled_png(fig, "EER (%) and change vs clean (pp) · detector × condition · outlined: worst")
