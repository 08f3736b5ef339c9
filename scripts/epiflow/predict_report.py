"""The predict report: what the predict path wrote for each predicted line and deployed model, as one self-contained
HTML file (figures embedded as PNG data URIs, no network).

Sections: an overview of the calls and their calibration; how far each line is from the training lines (shift.json);
whether disagreement between the leave-one-line-out fits (`score_sd`) predicts errors, on predicted lines that also
have labels; locus figures (epiflow.loci); and, when a CRISPRi sheet is configured, the functional validation the
crispr rules wrote. Reads only files the rules wrote, plus the screens' gene names from the CRISPRi sheet sources.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow import loci, plots
from epiflow.io_crispr import read_crispr
from epiflow.io_pairs import read_pair_table
from epiflow.io_regions import read_tads
from epiflow.metrics import aupr, precision_recall_f1
from epiflow.pairs import overlaps_by_gene
from epiflow.predict_outputs import read_predictions
from epiflow.report import render

log = logging.getLogger(__name__)

SD_BINS = 5  # score_sd quintiles
TOP_FEATURES = 8  # most shifted features shown per line
SCREEN_GENES = 12  # locus figures of a line's CRISPRi-screened genes, at most


@dataclass
class PredictReportInputs:
    """Paths the predict report reads. predictions / genes / calibration / shift / meta: (line, model) -> path;
    pairs: labelled predicted line -> pair table; tracks: line -> {mark: bigWig}; tads: training line -> TAD file;
    crispr: [{name, cell_line, summary, pr_curves, by_distance, screen}] (empty without a CRISPRi sheet)."""

    predictions: dict
    genes: dict
    calibration: dict
    shift: dict
    meta: dict
    pairs: dict = field(default_factory=dict)
    tracks: dict = field(default_factory=dict)
    tads: dict = field(default_factory=dict)
    crispr: list = field(default_factory=list)


# ---- (a) overview ---------------------------------------------------------------------------------------------------
def overview_row(line: str, model: str, predictions: pd.DataFrame, notes: dict, meta: dict) -> dict:
    """One row of the overview: candidates, calls, threshold and its rule, calibration method, label-shift
    estimator with the estimated genome-wide positive rate next to the validation (benchmark) rate."""
    return {
        "line": line,
        "model": model,
        "training_lines": ", ".join(meta.get("training_lines") or notes.get("training_lines") or []),
        "candidates": len(predictions),
        "calls": int(predictions.predicted.sum()),
        "threshold": notes.get("threshold", np.nan),
        "threshold_rule": notes.get("threshold_rule", ""),
        "method": notes.get("method", ""),
        "estimator": notes.get("label_shift_estimator", ""),
        "reweighted": bool(notes.get("label_shift_applied", False)),
        "estimate": notes.get("test_prior_estimate", np.nan),
        "other_estimates": {
            k.removeprefix("test_prior_"): v
            for k, v in sorted(notes.items())
            if k.startswith("test_prior_")
            and k != "test_prior_estimate"
            and k.removeprefix("test_prior_") != notes.get("label_shift_estimator")
        },
        "validation_rate": notes.get("val_prior", np.nan),
        "mean_prob": float(predictions.prob.mean()) if len(predictions) else np.nan,
    }


# ---- (b) shift ------------------------------------------------------------------------------------------------------
def shift_section(line: str, record: dict) -> dict:
    """Figures (W1 raw / normalized, domain probe: the line vs each validation line), the most shifted features and
    the warning of one line's shift.json."""
    rows = {f"{line} (predicted)": record["distance"]}
    rows |= {f"{v} (validation)": r for v, r in sorted(record.get("validation_lines", {}).items())}
    w1 = {k: {"raw": r["w1_raw"], "normalized": r["w1_normalized"]} for k, r in rows.items()}
    probe = {k: {"accuracy": r["domain_probe_accuracy"]} for k, r in rows.items()}
    features = pd.DataFrame(record.get("features") or [], columns=["feature", "w1_raw", "w1_normalized"])
    top = features.sort_values("w1_raw", ascending=False, kind="stable").head(TOP_FEATURES)
    return {
        "line": line,
        "distance": record["distance"],
        "beyond": record.get("beyond_validation_range") or [],
        "warning": record.get("warning"),
        "features": top.to_dict("records"),
        "figures": {
            "w1": plots.data_uri(plots.bars(w1, f"{line}: mean W1 from the other lines", "W1 (SD units)")),
            "probe": plots.data_uri(
                plots.bars(probe, f"{line}: domain probe vs the other lines", "accuracy (chance 0.5)")
            ),
        },
    }


# ---- (c) disagreement -----------------------------------------------------------------------------------------------
def overlap_matches(pairs: pd.DataFrame, predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(pair row, prediction row) of every prediction on a pair's chromosome, for the pair's gene (TargetGene ==
    gene), whose element overlaps the pair's enhancer [enhancer_start, enhancer_end) by >= 1 base. Rows are
    positions; the search is the CRISPRi matching's (epiflow.pairs.overlaps_by_gene)."""
    elements = pd.DataFrame(
        {
            "chrom": pairs.chrom.astype(str).to_numpy(),
            "gene": pairs.gene.astype(str).to_numpy(),
            "start": pairs.enhancer_start.to_numpy(),
            "end": pairs.enhancer_end.to_numpy(),
        }
    )
    called = pd.DataFrame(
        {
            "chrom": predictions.chrom.astype(str).to_numpy(),
            "gene": predictions.TargetGene.astype(str).to_numpy(),
            "start": predictions.start.to_numpy(),
            "end": predictions.end.to_numpy(),
        }
    )
    return overlaps_by_gene(elements, called)


def best_matches(owner: np.ndarray, hit: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """Per pair 0..n-1, the matched prediction row (of the (owner, hit) pairs of overlap_matches) with the highest
    `key` (per prediction row; ties: the first match), -1 where none matches."""
    best = np.full(n, -1, dtype=np.int64)
    if len(owner):
        order = np.lexsort((-key[hit], owner))  # by pair, then by key descending (stable: first match on ties)
        first = np.r_[True, owner[order][1:] != owner[order][:-1]]
        best[owner[order][first]] = hit[order][first]
    return best


def matched_values(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    """`values` (per prediction row) at each pair's best_matches row, NaN where the pair matched nothing."""
    return np.where(best >= 0, values[np.maximum(best, 0)], np.nan)


def join_pairs(predictions: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Each labelled pair with the prediction of highest prob among those matching it (overlap_matches) and that
    prediction's score_sd; `matched` False (prob, score_sd NaN) where none matches. Columns: pair_id, label,
    distance, prob, score_sd, matched."""
    best = best_matches(*overlap_matches(pairs, predictions), predictions.prob.to_numpy(), len(pairs))
    out = pairs[["pair_id", "label", "distance"]].reset_index(drop=True)
    out["matched"] = best >= 0
    for column in ("prob", "score_sd"):
        out[column] = matched_values(predictions[column].to_numpy(), best)
    return out[["pair_id", "label", "distance", "prob", "score_sd", "matched"]]


def disagreement_bins(joined: pd.DataFrame, threshold: float, n_bins: int = SD_BINS) -> pd.DataFrame:
    """Matched pairs of join_pairs in equal-count bins of score_sd (ties split by pair order): per bin n, n_pos,
    called (prob >= threshold), precision (NaN without a call), recall, aupr, and the bin's score_sd range."""
    matched = joined[joined.matched].reset_index(drop=True)
    columns = ["bin", "sd_lo", "sd_hi", "n", "n_pos", "called", "precision", "recall", "aupr", "pos_rate"]
    if matched.empty:
        return pd.DataFrame(columns=columns)
    k = min(int(n_bins), len(matched))
    rank = matched.score_sd.rank(method="first").to_numpy()
    matched["bin"] = np.minimum(((rank - 1) * k // len(matched)).astype(int), k - 1) + 1
    rows = []
    for b, group in matched.groupby("bin", sort=True):
        y, p = group.label.to_numpy(np.int64), group.prob.to_numpy(np.float64)
        precision, recall, _ = precision_recall_f1(y, p, threshold)
        called = int((p >= threshold).sum())
        rows.append(
            {
                "bin": int(b),
                "sd_lo": float(group.score_sd.min()),
                "sd_hi": float(group.score_sd.max()),
                "n": len(group),
                "n_pos": int(y.sum()),
                "called": called,
                "precision": precision if called else np.nan,
                "recall": recall if y.sum() else np.nan,
                "aupr": aupr(y, p),
                "pos_rate": float(y.mean()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def disagreement_table(predictions: pd.DataFrame, pairs: pd.DataFrame, threshold: float, n_bins: int = SD_BINS):
    """Precision at `threshold`, recall and AUPR per score_sd quintile of the labelled pairs the predictions cover
    (join_pairs then disagreement_bins)."""
    return disagreement_bins(join_pairs(predictions, pairs), threshold, n_bins)


def disagreement_figure(table: pd.DataFrame, title: str) -> bytes:
    """Precision at the threshold and AUPR per score_sd bin, the bin's positive rate dashed (plots.by_bin)."""
    x = table.bin.to_numpy()
    curves = {name: (x, table[column]) for column, name in (("precision", "precision at threshold"), ("aupr", "AUPR"))}
    labels = [f"Q{b}\n≤ {hi:.2g}" for b, hi in zip(table.bin, table.sd_hi, strict=True)]
    xlabel = "score_sd bin (low → high disagreement)"
    return plots.by_bin(curves, (x, table.pos_rate, "positive rate"), labels, title, "precision / AUPR", xlabel, x)


def disagreement_section(line: str, model: str, predictions, pairs, threshold: float) -> dict:
    joined = join_pairs(predictions, pairs)
    table = disagreement_bins(joined, threshold)
    positives = joined.label == 1
    section = {
        "line": line,
        "model": model,
        "threshold": threshold,
        "n_pairs": len(joined),
        "coverage": float(joined.matched.mean()) if len(joined) else np.nan,
        "coverage_pos": float(joined.matched[positives].mean()) if positives.any() else np.nan,
        "rows": table.to_dict("records"),
        "figure": None,
    }
    if len(table):
        section["figure"] = plots.data_uri(disagreement_figure(table, f"{line} / {model}: by score_sd"))
    return section


# ---- (d) loci -------------------------------------------------------------------------------------------------------
def safe_name(gene: str) -> str:
    """A gene name usable as a file name."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", gene)


# ---- (e) CRISPRi ----------------------------------------------------------------------------------------------------
def crispr_sentence(row: dict) -> str:
    """Whether a predictor beats the best baseline: its paired AUPR difference's interval excludes 0."""
    name, best = row["predictor"], row.get("best_baseline")
    delta, lo, hi = (row.get(k, np.nan) for k in ("delta_aupr", "delta_aupr_lo", "delta_aupr_hi"))
    if not best or not isinstance(best, str) or not np.isfinite([delta, lo, hi]).all():
        return f"{name}: AUPR {row['aupr']:.3f}; no paired difference to a baseline in summary.tsv."
    numbers = (
        f"AUPR {row['aupr']:.3f} vs {best} {row['aupr'] - delta:.3f}, paired difference {delta:+.3f} "
        f"(95% interval {lo:+.3f} to {hi:+.3f})"
    )
    if lo > 0:
        return f"{name} beats the best baseline ({best}): {numbers}, the interval excludes 0."
    if hi < 0:
        return f"{name} does not beat the best baseline ({best}): {numbers}; it is worse, the interval lies below 0."
    return f"{name} does not beat the best baseline ({best}): {numbers}, the interval includes 0."


PROFILE_BINS = [0, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, np.inf]


def distance_profile(training: pd.DataFrame, screen: pd.DataFrame) -> list[dict]:
    """Positive rate by distance bin of the labels a final model learnt (its validation rows: the training lines'
    pairs) beside the screen's regulated rate: where the two shapes differ, Hi-C loop labels and regulation part."""
    rows = []
    for low, high in zip(PROFILE_BINS[:-1], PROFILE_BINS[1:], strict=True):
        learnt = training[(training.distance >= low) & (training.distance < high)]
        tested = screen[(screen.distance >= low) & (screen.distance < high)]
        if len(learnt) or len(tested):
            rows.append(
                {
                    "bin": f"{low / 1000:g}–{high / 1000:g} kb" if np.isfinite(high) else f">= {low / 1000:g} kb",
                    "training_n": len(learnt),
                    "training_rate": float(learnt.label.mean()) if len(learnt) else np.nan,
                    "screen_n": len(tested),
                    "screen_rate": float(tested.label.mean()) if len(tested) else np.nan,
                }
            )
    return rows


def crispr_section(screen: dict) -> dict:
    """The summary table, the sentences of every non-baseline predictor and the figures of one screen."""
    summary = pd.read_csv(screen["summary"], sep="\t")
    for column in ("delta_aupr", "delta_aupr_lo", "delta_aupr_hi", "best_baseline"):
        if column not in summary:
            summary[column] = np.nan
    summary["matched_fraction"] = summary.matched / summary.n.where(summary.n > 0)
    rows = summary.to_dict("records")
    return {
        "name": screen["name"],
        "line": screen["cell_line"],
        "rows": rows,
        "sentences": [crispr_sentence(r) for r in rows if not str(r["predictor"]).startswith("baseline_")],
        "figures": {k: plots.data_uri(Path(screen[k]).read_bytes()) for k in ("pr_curves", "by_distance")},
        "profile": distance_profile(
            pd.read_csv(screen["training"], sep="\t", usecols=["label", "distance"]),
            pd.read_csv(screen["pairs"], sep="\t", usecols=["label", "distance"]),
        )
        if screen.get("training") and screen.get("pairs")
        else [],
    }


def screen_genes(screens: list[dict], line: str, limit: int = SCREEN_GENES, chrom_map=None) -> list[str]:
    """The genes the CRISPRi screens of `line` measured, those with the most regulated elements first (then the most
    tested pairs, then file order), at most `limit`: a screen of hundreds of genes would bury the page. `chrom_map`
    as for the benchmark (reference.chrom_map), so a screen it reads is read here too."""
    tables = [
        read_crispr(s["screen"], chrom_map=chrom_map)[0] for s in screens if s["cell_line"] == line and s.get("screen")
    ]
    if not tables:
        return []
    pairs = pd.concat(tables, ignore_index=True)
    per_gene = pairs.groupby("gene", sort=False).agg(n_pos=("label", "sum"), n=("label", "size")).reset_index()
    ranked = per_gene.sort_values(["n_pos", "n"], ascending=False, kind="stable")
    return ranked.gene.head(limit).tolist()


# ---- the report -----------------------------------------------------------------------------------------------------
def line_loci(line, model, predictions, inputs, meta, threshold, options, screens, loci_dir) -> list[dict]:
    """Locus figures of one line x model (written under loci_dir/line/model/ when given) as page entries."""
    cfg = options.get("loci") or {}
    genes_table = pd.read_csv(inputs.genes[(line, model)], sep="\t", dtype={"TargetGene": str})
    genes = loci.choose_genes(
        genes_table,
        predictions,
        cfg.get("genes") or [],
        int(cfg.get("top", 3)),
        screen_genes(screens, line, chrom_map=options.get("chrom_map")),
    )
    tads = {
        c: read_tads(inputs.tads[c], chrom_map=options.get("chrom_map"))
        for c in meta.get("training_lines", [])
        if c in inputs.tads
    }
    flank, out = int(cfg.get("flank", 50_000)), []
    for gene in genes:
        title = f"{gene} ({line}, {model})"
        png = loci.gene_locus(gene, predictions, inputs.tracks[line], tads, threshold, flank, title)
        if loci_dir is not None:
            path = Path(loci_dir) / line / model / f"{safe_name(gene)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
        out.append({"gene": gene, "title": title, "src": plots.data_uri(png)})
    return out


def build_predict_report(inputs: PredictReportInputs, template, out_path, options: dict, loci_dir=None) -> dict:
    """Write the predict report (and, when loci_dir is given, its locus figures as PNG files). `options`: loci
    {genes, top, flank}, chrom_map. Returns the page's context (figures as data URIs; for logs and tests)."""
    overview, disagreement, locus = [], [], []
    shifts = {}
    for line, model in inputs.predictions:
        predictions = read_predictions(inputs.predictions[(line, model)])
        notes = json.loads(Path(inputs.calibration[(line, model)]).read_text())
        meta = json.loads(Path(inputs.meta[(line, model)]).read_text())
        overview.append(overview_row(line, model, predictions, notes, meta))
        if line not in shifts:  # the distance is the same for every model of a line (features, not scores)
            shifts[line] = shift_section(line, json.loads(Path(inputs.shift[(line, model)]).read_text()))
        threshold = float(notes["threshold"])
        if line in inputs.pairs:
            pairs = read_pair_table(inputs.pairs[line])
            disagreement.append(disagreement_section(line, model, predictions, pairs, threshold))
        figures = line_loci(line, model, predictions, inputs, meta, threshold, options, inputs.crispr, loci_dir)
        locus.append({"line": line, "model": model, "figures": figures})
        log.info("%s / %s: %d candidates, %d locus figures", line, model, len(predictions), len(figures))
    if loci_dir is not None:
        Path(loci_dir).mkdir(parents=True, exist_ok=True)
    context = {
        "overview": overview,
        "shifts": list(shifts.values()),
        "disagreement": disagreement,
        "loci": locus,
        "crispr": [crispr_section(s) for s in inputs.crispr],
        "crispr_configured": bool(inputs.crispr),
    }
    Path(out_path).write_text(render(template, context), encoding="utf-8")
    log.info("wrote %s", out_path)
    return context
