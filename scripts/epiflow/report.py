"""The reflection report: the run's numbers, figures and findings as one self-contained HTML file.

Reads only files the workflow wrote, through the tables epiflow.report_facts computes from them; never re-runs a
model. Besides the HTML it writes every figure as a PNG and every table as a TSV (for `snakemake --report`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from epiflow import narrative, plots
from epiflow.report_facts import ReportInputs, collect_facts, per_heldout, read_predictions

log = logging.getLogger(__name__)


def line_figures(heldout: str, models: dict, facts: narrative.Facts, n_bins: int) -> dict[str, bytes]:
    """The figures of one held-out line: PR (train vs test), reliability (raw vs calibrated), threshold-F1,
    W1 per feature and AUPR by distance bin. Keys are figure names (pr, reliability, ...)."""
    pr, rel, f1 = {}, {}, {}
    thresholds = []
    for model, pred in models.items():
        test, train = pred[pred.split == "test"], pred[pred.split == "train"]
        y = test.label.to_numpy()
        pr[f"{model} train"] = (train.label.to_numpy(), train.prob.to_numpy())
        pr[f"{model} test"] = (y, test.prob.to_numpy())
        rel[f"{model} raw"] = (y, test.score.to_numpy())
        rel[f"{model} calibrated"] = (y, test.prob.to_numpy())
        f1[f"{model} test"] = (y, test.prob.to_numpy())
        thresholds.append(float(np.mean(test.threshold)))
    out = {
        "pr": plots.pr_curves(pr, f"{heldout}: precision-recall"),
        "reliability": plots.reliability(rel, f"{heldout}: reliability (test)", n_bins),
        "threshold": plots.threshold_f1(f1, float(np.mean(thresholds)), f"{heldout}: F1 vs threshold (test)"),
    }
    shift = facts.shift[facts.shift.heldout == heldout] if not facts.shift.empty else facts.shift
    if len(shift):
        values = {r.feature: {"raw": r.w1_raw, "normalized": r.w1_normalized} for r in shift.itertuples()}
        out["shift"] = plots.bars(values, f"{heldout}: W1 training lines vs {heldout}", "W1 (SD units)")
    strata = facts.distance[facts.distance.heldout == heldout]
    if len(strata):
        first = strata[strata.model == strata.model.iloc[0]]
        labels = [f"{lo / 1e3:.0f}-{hi / 1e3:.0f} kb" for lo, hi in zip(first.lo, first.hi, strict=True)]
        curves = {m: (g.bin.to_numpy(), g.aupr.to_numpy()) for m, g in strata.groupby("model")}
        reference = (first.bin.to_numpy(), first.pos_rate.to_numpy(), "positive rate")
        out["distance"] = plots.by_bin(curves, reference, labels, f"{heldout}: test AUPR by distance")
    return out


def build_figures(by_line: dict, facts: narrative.Facts, n_bins: int) -> dict[tuple[str, str], bytes]:
    """(section, name) -> PNG for every figure of the report; section is the figure kind, name the line."""
    figures = {}
    gaps = {f"{r.heldout} / {r.model}": {"gap": r.gap} for r in facts.summary.itertuples() if np.isfinite(r.gap)}
    figures[("gap", "all")] = plots.bars(gaps, "train - test AUPR (generalization gap)", "AUPR gap")
    for heldout, models in by_line.items():
        for section, png in line_figures(heldout, models, facts, n_bins).items():
            figures[(section, heldout)] = png
    return figures


def render(template: str | Path, context: dict) -> str:
    """Render the Jinja2 template with autoescaping."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(template).parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = format_number
    return env.get_template(Path(template).name).render(**context)


def format_number(value, spec: str = ".3f") -> str:
    """A number for the page; '–' for missing or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def heterogeneity_rows(table: pd.DataFrame, per_line: int = 6) -> list[dict]:
    """The page's rows: per held-out line the features whose link differs most (largest Q) plus the spurious ones."""
    if table.empty:
        return []
    rows = []
    for _, group in table.dropna(subset=["q"]).groupby("heldout"):
        group = group.sort_values("q", ascending=False)
        shown = group[(group.index.isin(group.head(per_line).index)) | group.spurious]
        for r in shown.itertuples():
            per = [f"{line} {c:.2f} ± {e:.2f}" for line, c, e in zip(r.lines, r.coefficients, r.se, strict=True)]
            rows.append(
                {"heldout": r.heldout, "feature": r.feature, "per_line": "; ".join(per), "q": r.q, "df": r.df}
                | {"p_adjusted": r.p_adjusted, "spurious": bool(r.spurious)}
            )
    return rows


def _joined_lists(table: pd.DataFrame) -> pd.DataFrame:
    """List cells (per-line coefficients) as ';'-joined text, so the TSV reads back without Python syntax."""
    out = table.copy()
    for column in out.columns:
        if len(out) and isinstance(out[column].iloc[0], list):
            out[column] = out[column].map(lambda v: ";".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in v))
    return out


def write_tables(facts: narrative.Facts, found: list[dict], directory: Path) -> None:
    """Every report table as TSV under `directory` (picked up by `snakemake --report`)."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = {
        "summary": facts.summary,
        "findings": pd.DataFrame(found, columns=["rule", "subject", "text", "cites", "strength"]),
        "leakage": facts.leakage,
        "distance": facts.distance,
        "shift": facts.shift,
        "heterogeneity": _joined_lists(facts.heterogeneity),
        "diagnostics": facts.diagnostics.drop(columns=["attribution"], errors="ignore"),
        "calibration": facts.calibration,
        "anchors": facts.anchors,
    }
    for name, table in tables.items():
        table.to_csv(directory / f"{name}.tsv", sep="\t", index=False, float_format="%.4g")


def build_report(inputs: ReportInputs, template, out_path, options: dict, figures_dir=None, tables_dir=None) -> dict:
    """Write the reflection report (and, when given, its figures as PNG and tables as TSV); returns the findings
    and next steps as text (for logs and tests)."""
    predictions = read_predictions(inputs.predictions)
    facts = collect_facts(inputs, predictions, options.get("spurious_marks") or ())
    language = options.get("language", "en")
    messages = narrative.load_messages(language, Path(template).parent / "messages")
    fired = narrative.findings(facts)
    found = narrative.render_findings(fired, messages)
    steps = [s | {"text": messages["next_steps"][s["step"]]} for s in narrative.next_steps(fired)]
    figures = build_figures(per_heldout(predictions), facts, int(options.get("ece_bins", 10)))
    if figures_dir is not None:
        for (section, name), png in figures.items():
            path = Path(figures_dir) / section / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
    if tables_dir is not None:
        write_tables(facts, found, Path(tables_dir))
    propensity = facts.summary[facts.summary.model == "propensity"]
    context = {
        "t": messages["ui"],
        "language": language,
        "findings": found,
        "steps": steps,
        "table": facts.summary.to_dict("records"),
        "anchors": facts.anchors.to_dict("records"),
        "leakage": facts.leakage.to_dict("records"),
        "propensity": propensity.to_dict("records"),
        "diagnostics": facts.diagnostics.to_dict("records"),
        "heterogeneity": heterogeneity_rows(facts.heterogeneity),
        "calibration": facts.calibration.to_dict("records"),
        "heldouts": sorted(per_heldout(predictions)),
        "figures": {f"{section}-{name}": plots.data_uri(png) for (section, name), png in figures.items()},
    }
    Path(out_path).write_text(render(template, context), encoding="utf-8")
    log.info("wrote %s with %d findings", out_path, len(found))
    return {"findings": found, "steps": steps}
