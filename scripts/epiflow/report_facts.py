"""The reflection report's facts: every table the narrative and the page need, computed from the files the workflow
wrote (summary, predictions, calibration notes, pair tables, features, diagnostics) plus configured external anchor
predictions; never re-runs a model. epiflow.report turns them into figures, tables and the HTML page.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow import audit, narrative
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
    # the model that decided the screen, None where unknown (older files; narrative_checks.screened_out then names
    # the model)
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
