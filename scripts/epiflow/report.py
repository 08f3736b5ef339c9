"""The reflection report: the run's numbers, figures and findings as one self-contained HTML file.

Reads only files the workflow wrote (summary, predictions, calibration notes, pair tables, features, diagnostics)
plus configured external anchor predictions; never re-runs a model. Besides the HTML it writes every figure as a
PNG and every table as a TSV (for `snakemake --report`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from epiflow import audit, narrative, plots
from epiflow.errors import InputError
from epiflow.io_pairs import read_pair_table
from epiflow.report_diagnostics import link_heterogeneity, summarize_diagnostics
from epiflow.shift import feature_shift

log = logging.getLogger(__name__)

# published reference methods, marked in the summary (the narrative still judges gbm: it is the demo's learner)
TABLE_BASELINES = (*narrative.BASELINES, "gbm", "gbm_notopo")
DIAGNOSTIC_COLUMNS = [
    "domain_probe_accuracy",
    "domain_probe_chance",
    "domain_probe_input_accuracy",
    "separation_train",
    "separation_test",
    "sharpness_relative",
    "spurious_share",
    "screen_gain",
]


@dataclass
class ReportInputs:
    """Paths the report reads. predictions / calibration / diagnostics: (heldout, model) -> path (a missing
    diagnostics file shows as "not computed"); pairs / features: line -> path; train_lines: heldout -> its training
    lines; anchors: [{name, heldout, source, format}] with local sources."""

    summary: str | Path
    predictions: dict
    calibration: dict
    pairs: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    train_lines: dict = field(default_factory=dict)
    chrom_folds: list | None = None
    diagnostics: dict = field(default_factory=dict)
    anchors: list = field(default_factory=list)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per held-out line x model: train/val/test AUPR and AUROC, the gap, lift, P/R/F1 and ECE on test."""
    wide = summary.pivot_table(index=["heldout", "model"], columns="split", values=["aupr", "auroc"], aggfunc="first")
    wide.columns = [f"{metric}_{split}" for metric, split in wide.columns]
    for column in ("aupr_train", "aupr_val", "aupr_test", "auroc_train", "auroc_val", "auroc_test"):
        if column not in wide:
            wide[column] = math.nan
    test = summary[summary.split == "test"].set_index(["heldout", "model"])
    keep = ["pos_rate", "threshold", "precision", "recall", "f1", "ece_raw", "ece", "oracle_threshold", "oracle_f1"]
    out = wide.join(test.reindex(columns=keep))
    out["gap"] = out["aupr_train"] - out["aupr_test"]
    out["lift"] = out["aupr_test"] / out["pos_rate"]
    best = out.groupby(level="heldout")["aupr_test"].transform("max")
    out["best"] = out["aupr_test"] == best
    out = out.reset_index()
    out["baseline"] = out.model.isin(TABLE_BASELINES)
    return out


def validation_choice(summary: pd.DataFrame, by_line: dict) -> pd.DataFrame:
    """`summary` with `aupr_val_lines` (the mean over training lines of each line's validation AUPR, from the
    out-of-line `val` scores: the grid's criterion) and `chosen`: per held-out line, the candidate (not a baseline of
    narrative.BASELINES) with the highest such score; the model one would deploy without seeing the held-out line.
    Ties go to the first model by name; a line whose candidates have no validation score chooses none."""
    from epiflow.metrics import aupr_per_line

    def per_line_mean(table: pd.DataFrame) -> float:
        scores = [s for s in aupr_per_line(table[table.split == "val"]) if math.isfinite(s)]
        return float(np.mean(scores)) if scores else math.nan

    means = {(h, m): per_line_mean(t) for h, models in by_line.items() for m, t in models.items()}
    out = summary.copy()
    out["aupr_val_lines"] = [means.get((h, m), math.nan) for h, m in zip(out.heldout, out.model, strict=True)]
    out["chosen"] = False
    candidates = out[~out.model.isin(narrative.BASELINES) & out.aupr_val_lines.notna()]
    for _, group in candidates.sort_values(["heldout", "model"]).groupby("heldout"):
        out.loc[group.aupr_val_lines.idxmax(), "chosen"] = True
    return out


def read_predictions(paths: dict) -> dict[tuple[str, str], pd.DataFrame]:
    return {key: pd.read_csv(p, sep="\t", dtype={"chrom": str, "pair_id": str}) for key, p in paths.items()}


def per_heldout(predictions: dict) -> dict[str, dict[str, pd.DataFrame]]:
    """(heldout, model) -> table  as  heldout -> model -> table."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for (heldout, model), table in sorted(predictions.items()):
        out.setdefault(heldout, {})[model] = table
    return out


class RunFiles:
    """The run's pair tables and feature files, each read once per report: the leakage audit, the shift and link
    tables and the anchors read the same lines for every held-out line. Callers must not modify what they get."""

    def __init__(self, inputs: ReportInputs):
        self.inputs = inputs
        self._pairs: dict[str, pd.DataFrame] = {}
        self._features: dict[str, dict] = {}
        self._labelled: dict[str, tuple] = {}

    def pairs(self, line: str) -> pd.DataFrame:
        if line not in self._pairs:
            self._pairs[line] = read_pair_table(self.inputs.pairs[line])
        return self._pairs[line]

    def features(self, line: str) -> dict:
        from epiflow.features import load_features

        if line not in self._features:
            self._features[line] = load_features(self.inputs.features[line])
        return self._features[line]

    def labelled(self, line: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(feature values, labels in the same row order, feature columns) of a line."""
        if line not in self._labelled:
            features = self.features(line)
            labels = self.pairs(line).set_index("pair_id").label
            ids = features["pair_id"].astype(str)
            missing = np.flatnonzero(~pd.Index(ids).isin(labels.index))
            if len(missing):
                raise InputError(
                    f"{self.inputs.features[line]}: row {missing[0] + 1}: pair {ids[missing[0]]} is not in "
                    f"{self.inputs.pairs[line]}; expected the features and pairs of one run"
                )
            columns = [str(c) for c in features["columns"]]
            self._labelled[line] = (features["values"], labels.reindex(ids).to_numpy(), columns)
        return self._labelled[line]


def leakage_tables(
    inputs: ReportInputs, by_line: dict, files: RunFiles | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leakage audit and distance strata of every held-out line (leakage empty without pair tables)."""
    files = files or RunFiles(inputs)
    leakage, distance = [], []
    for heldout, models in by_line.items():
        distance.append(audit.distance_strata(models).assign(heldout=heldout))
        lines = inputs.train_lines.get(heldout, [])
        if heldout not in inputs.pairs or not all(c in inputs.pairs for c in lines):
            continue
        train = pd.concat([files.pairs(c) for c in lines], ignore_index=True)
        table = audit.leakage_audit(models, files.pairs(heldout), train, inputs.chrom_folds)
        leakage.append(table.assign(heldout=heldout))
    leak = pd.concat(leakage, ignore_index=True) if leakage else pd.DataFrame()
    if not leak.empty:
        leak["share_either"] = leak.share_enhancer + leak.share_promoter - leak.share_both
    return leak, pd.concat(distance, ignore_index=True)


def shift_table(inputs: ReportInputs, heldouts, files: RunFiles | None = None) -> pd.DataFrame:
    """Per held-out line and feature: W1 between its training lines and it (empty without feature files)."""
    files = files or RunFiles(inputs)
    parts = []
    for heldout in heldouts:
        lines = inputs.train_lines.get(heldout, [])
        if not lines or not all(c in inputs.features for c in [heldout, *lines]):
            continue
        test = files.features(heldout)
        train = {c: files.features(c)["values"] for c in lines}
        columns = [str(c) for c in test["columns"]]
        parts.append(feature_shift(train, test["values"], columns).assign(heldout=heldout))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def heterogeneity_table(
    inputs: ReportInputs, heldouts, spurious_marks=(), files: RunFiles | None = None
) -> pd.DataFrame:
    """Per held-out line and feature: does the feature's link to the label differ between its training lines
    (`link_heterogeneity`; the held-out line's labels are not read)? `spurious` flags the columns of the configured
    spurious marks (report.spurious_marks). Empty without pair tables and feature files."""
    files = files or RunFiles(inputs)
    parts = []
    for heldout in heldouts:
        lines = inputs.train_lines.get(heldout, [])
        if len(lines) < 2 or not all(c in inputs.features and c in inputs.pairs for c in lines):
            continue
        train = {c: files.labelled(c)[:2] for c in lines}
        table = link_heterogeneity(train, files.labelled(lines[0])[2])
        if not table.empty:
            table["spurious"] = table.feature.map(lambda f: f.split("_")[0] in set(spurious_marks))
            parts.append(table.assign(heldout=heldout))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


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


def diagnostics_table(paths: dict, keys) -> pd.DataFrame:
    """Mean over folds of each (heldout, model)'s diagnostics JSON (a list of per-fold dicts) where the file exists
    and is not empty; NaN rows (computed = False) otherwise."""
    rows = []
    for heldout, model in keys:
        path = Path(paths[(heldout, model)]) if (heldout, model) in paths else None
        per_fold = json.loads(path.read_text() or "[]") if path is not None and path.exists() else []
        found = bool(per_fold)
        summary = summarize_diagnostics(per_fold) if found else {}
        rows.append({"heldout": heldout, "model": model, "computed": found} | summary)
    table = pd.DataFrame(rows)
    for column in DIAGNOSTIC_COLUMNS:
        if column not in table:
            table[column] = math.nan
    # a list where the model screened ([] = it kept every mark), None where it does not screen
    screened = table["screened_out"] if "screened_out" in table else [None] * len(table)
    table["screened_out"] = [v if isinstance(v, list) else None for v in screened]
    # the model that decided the screen, None where unknown (older files; narrative.screened_out then names the model)
    screener = table["screened_with"] if "screened_with" in table else [None] * len(table)
    table["screened_with"] = [s if isinstance(s, str) else None for s in screener]
    for column in ("spurious_columns", "spurious_groups"):
        if column not in table:
            table[column] = [[] for _ in range(len(table))]
    return table


def anchor_table(inputs: ReportInputs, by_line: dict, files: RunFiles | None = None) -> pd.DataFrame:
    """Each configured anchor and every model scored on the same test pairs of its held-out line."""
    files = files or RunFiles(inputs)
    parts = []
    for anchor in inputs.anchors:
        heldout = anchor["heldout"]
        if heldout not in by_line or heldout not in inputs.pairs:
            log.warning("anchor %s: held-out line %s not in this run; skipped", anchor["name"], heldout)
            continue
        scores = audit.read_anchor(anchor["source"], anchor.get("format", "transepi"), files.pairs(heldout))
        table = audit.anchor_comparison(scores, by_line[heldout], anchor["name"])
        parts.append(table.assign(heldout=heldout, anchor=anchor["name"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


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


def collect_facts(inputs: ReportInputs, predictions: dict, spurious_marks=()) -> narrative.Facts:
    """Every table the narrative and the page need, computed from the inputs."""
    by_line = per_heldout(predictions)
    summary = validation_choice(summary_table(pd.read_csv(inputs.summary, sep="\t")), by_line)
    calibration = pd.concat(
        [pd.read_csv(p, sep="\t").assign(heldout=h, model=m) for (h, m), p in inputs.calibration.items()],
        ignore_index=True,
    )
    if "label_shift_estimator" not in calibration:  # calibration notes written before the estimator choice
        calibration["label_shift_estimator"] = ""
    calibration["label_shift_estimator"] = calibration.label_shift_estimator.fillna("")
    files = RunFiles(inputs)
    leakage, distance = leakage_tables(inputs, by_line, files)
    return narrative.Facts(
        summary=summary,
        diagnostics=diagnostics_table(inputs.diagnostics, sorted(predictions)),
        leakage=leakage,
        shift=shift_table(inputs, by_line, files),
        heterogeneity=heterogeneity_table(inputs, by_line, spurious_marks, files),
        distance=distance,
        calibration=calibration,
        anchors=anchor_table(inputs, by_line, files),
    )


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
