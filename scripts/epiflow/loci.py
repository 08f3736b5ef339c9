"""Locus figures of the predict report: one gene of a predicted line, its marks' signal over the locus, its
candidate links as arcs from element to TSS coloured by `prob` (the predicted ones bold), and beneath them the TAD
prior (the TADs of the final model's training lines, one row per line).

Coordinates are 0-based half-open, as in the prediction table. Figures follow epiflow.plots' style and are returned
as PNG bytes.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pandas as pd
import pyBigWig

from epiflow.plots import COLORS, STYLE, to_png  # sets the Agg backend before pyplot is imported below

log = logging.getLogger(__name__)

N_BINS = 1000  # signal bins per locus: finer than the figure's pixels
ARC_POINTS = 48


def choose_genes(genes_table: pd.DataFrame, predictions: pd.DataFrame, named, top: int, screen_genes=()) -> list[str]:
    """The genes to draw: the `named` ones present, then the `top` genes with the most predicted enhancers (ties:
    larger summed prob, then name; genes without a call are not "top"), then the screen genes present; in that
    order, each once. A gene is present when it has a candidate link in `predictions`; a named gene that is not
    (a misspelt name, or a gene without candidates) is logged as a warning."""
    present = set(predictions.TargetGene.astype(str))
    absent = [str(g) for g in named if str(g) not in present]
    if absent:
        log.warning("predict.loci.genes %s have no candidate link in this line (expected TargetGene names)", absent)
    ranked = genes_table[genes_table.n_predicted > 0].sort_values(
        ["n_predicted", "sum_prob", "TargetGene"], ascending=[False, False, True], kind="stable"
    )
    chosen = [str(g) for g in named] + [str(g) for g in ranked.TargetGene.head(max(int(top), 0))]
    chosen += [str(g) for g in screen_genes]
    return [g for g in dict.fromkeys(chosen) if g in present]


def locus_window(links: pd.DataFrame, flank: int, chrom_size: int | None = None) -> tuple[int, int]:
    """[start, end) spanning a gene's candidate elements and its TSS, `flank` bp either side, inside the
    chromosome."""
    lo = int(min(links.start.min(), links.TargetGeneTSS.min())) - int(flank)
    hi = int(max(links.end.max(), links.TargetGeneTSS.max() + 1)) + int(flank)
    return max(lo, 0), hi if chrom_size is None else min(hi, int(chrom_size))


def read_signal(path, chrom: str, start: int, end: int, n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges, mean signal per bin) of a bigWig over [start, end) in ~n_bins bins; bases without data count
    as 0, and so does a chromosome the file lacks."""
    with contextlib.closing(pyBigWig.open(str(path))) as bw:
        size = bw.chroms(chrom)
        end = min(end, size) if size else end
        n = max(1, min(int(n_bins), end - start))
        edges = np.linspace(start, end, n + 1)
        if not size or end <= start:
            return edges, np.zeros(n)
        means = bw.stats(chrom, int(start), int(end), type="mean", nBins=n, exact=True)
    return edges, np.nan_to_num(np.array(means, dtype=np.float64))


def tads_in_window(tads: dict[str, pd.DataFrame], chrom: str, start: int, end: int) -> dict[str, pd.DataFrame]:
    """line -> its TADs (chrom, start, end) overlapping [start, end), clipped to it; every line kept (maybe empty)."""
    out = {}
    for line, table in tads.items():
        hit = table[(table.chrom == chrom) & (table.end > start) & (table.start < end)]
        out[line] = pd.DataFrame({"start": hit.start.clip(lower=start), "end": hit.end.clip(upper=end)})
    return out


def arc_segments(element_mid: np.ndarray, tss: np.ndarray, scale: float) -> np.ndarray:
    """(n, ARC_POINTS, 2) half-ellipses from each element midpoint to its TSS, height = span / scale."""
    theta = np.linspace(0.0, np.pi, ARC_POINTS)
    centre, radius = (element_mid + tss) / 2, np.abs(tss - element_mid) / 2
    x = centre[:, None] + radius[:, None] * np.cos(theta)[None, :]
    y = (2 * radius / scale)[:, None] * np.sin(theta)[None, :]
    return np.stack([x, y], axis=-1)


def locus_figure(
    gene: str,
    links: pd.DataFrame,
    signals: dict[str, tuple[np.ndarray, np.ndarray]],
    tads: dict[str, pd.DataFrame],
    window: tuple[int, int],
    threshold: float,
    title: str = "",
) -> bytes:
    """The locus figure of `gene`: `links` its rows of the prediction table, `signals` mark -> (bin edges, mean
    signal) (read_signal), `tads` training line -> TADs in the window (tads_in_window), `window` [start, end)."""
    import matplotlib.pyplot as plt

    lo, hi = window
    chrom = str(links.chrom.iloc[0])
    n_tracks, n_tads = len(signals), max(len(tads), 1)
    ratios = [0.55] * n_tracks + [1.8, 0.22 * n_tads + 0.15]
    size = (7.6, sum(ratios) + 1.0)
    with plt.rc_context(STYLE | {"figure.figsize": size}):
        fig = plt.figure()
        grid = fig.add_gridspec(len(ratios), 2, height_ratios=ratios, width_ratios=[1, 0.018])
        axes = [fig.add_subplot(grid[0, 0])]
        axes += [fig.add_subplot(grid[i, 0], sharex=axes[0]) for i in range(1, len(ratios))]
        for ax in axes[:-1]:
            ax.tick_params(axis="x", labelbottom=False)
        _signal_rows(axes[:n_tracks], signals)
        _link_arcs(axes[n_tracks], fig.add_subplot(grid[n_tracks, 1]), gene, links, threshold)
        _tad_rows(axes[-1], tads)
        axes[-1].set_xlim(lo, hi)
        axes[-1].xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x / 1e6:.2f}"))
        axes[-1].set_xlabel(f"{chrom} (Mb)")
        axes[0].set_title(title or gene, fontsize=9)
        return to_png(fig)


def _signal_rows(axes, signals: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """One filled step plot per mark, each on its own y scale."""
    for i, (mark, (edges, values)) in enumerate(signals.items()):
        ax = axes[i]
        ax.fill_between(edges[:-1], values, step="post", color=COLORS[i % len(COLORS)], lw=0)
        ax.set_ylim(0, max(float(values.max()), 1e-6) * 1.05)
        ax.set_ylabel(mark, rotation=0, ha="right", va="center", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.spines["bottom"].set_visible(False)
        ax.tick_params(axis="x", length=0)


def _link_arcs(arcs, colorbar_ax, gene: str, links: pd.DataFrame, threshold: float) -> None:
    """The candidate links as arcs from element to TSS coloured by prob (predicted ones bold), the elements as bars,
    the TSS as a marker, and the colour bar with the threshold drawn on it."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    order = np.lexsort((links.prob.to_numpy(), links.predicted.to_numpy()))  # bold and likely ones drawn last
    shown = links.iloc[order]
    mid = (shown.start.to_numpy() + shown.end.to_numpy()) / 2
    tss = shown.TargetGeneTSS.to_numpy(np.float64)
    top = max(float(shown.prob.max()), threshold, 1e-6)
    norm, cmap = Normalize(0.0, top), plt.get_cmap("viridis")
    predicted = shown.predicted.to_numpy(bool)
    segments = arc_segments(mid, tss, max(float(np.abs(tss - mid).max()), 1.0))
    arcs.add_collection(
        LineCollection(
            segments,
            colors=np.column_stack([cmap(norm(shown.prob.to_numpy()))[:, :3], np.where(predicted, 0.95, 0.4)]),
            linewidths=np.where(predicted, 2.0, 0.5),
        )
    )
    arcs.broken_barh(
        list(zip(shown.start, shown.end - shown.start, strict=True)),
        (-0.07, 0.06),
        facecolors=np.where(predicted, "k", "0.6"),
    )
    arcs.plot([tss[0]], [-0.04], marker="v", color="#e45756", ms=6, ls="none")
    arcs.annotate(gene, (tss[0], -0.04), xytext=(4, -9), textcoords="offset points", fontsize=7, color="#e45756")
    arcs.set_ylim(-0.2, 1.08)
    arcs.set_yticks([])
    arcs.spines["left"].set_visible(False)
    arcs.set_ylabel("links", rotation=0, ha="right", va="center", fontsize=7)
    bar = arcs.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=colorbar_ax)
    bar.ax.axhline(threshold, color="k", lw=1.5)
    bar.set_label("prob (line: threshold)", fontsize=6)
    bar.ax.tick_params(labelsize=6)


def _tad_rows(ax, tads: dict[str, pd.DataFrame]) -> None:
    """One row of bars per training line's TADs (alternating shades, so adjacent domains stay apart)."""
    for row, table in enumerate(tads.values()):
        shades = np.where(np.arange(len(table)) % 2 == 0, "#4c78a8", "#9ecae9")
        bars = list(zip(table.start, table.end - table.start, strict=True))
        ax.broken_barh(bars, (row - 0.35, 0.7), facecolors=shades)
    ax.set_yticks(range(len(tads)), list(tads), fontsize=6)
    ax.set_ylim(len(tads) - 0.5 if tads else 0.5, -0.5)
    ax.set_ylabel("TADs" if tads else "no TADs", rotation=0, ha="right", va="center", fontsize=7)
    ax.spines["left"].set_visible(False)


def gene_locus(
    gene: str,
    predictions: pd.DataFrame,
    tracks: dict[str, str],
    tads: dict[str, pd.DataFrame],
    threshold: float,
    flank: int,
    title: str = "",
    n_bins: int = N_BINS,
) -> bytes:
    """The locus figure of one gene of a prediction table, its signal read from `tracks` (mark -> bigWig)."""
    links = predictions[predictions.TargetGene.astype(str) == gene]
    if links.empty:
        raise ValueError(f"gene {gene!r} has no candidate link in the predictions (expected one of its genes)")
    chrom = str(links.chrom.iloc[0])
    window = locus_window(links, flank)
    signals = {mark: read_signal(path, chrom, *window, n_bins=n_bins) for mark, path in tracks.items()}
    end = min([window[1], *(int(edges[-1]) for edges, _ in signals.values())])
    window = (window[0], max(end, window[0] + 1))
    return locus_figure(gene, links, signals, tads_in_window(tads, chrom, *window), window, threshold, title)
