"""The checks of the reflection narrative's rules: findings derived from the measured numbers, one function each.

Each check is a small function over `Facts` (the report's tables) and a threshold (epiflow.narrative.RULES holds
them). A fired check returns Findings; each cites the numbers it rests on (`values`) and the figure/table anchors of
the report (`cites`), and has a `strength` (how far past its threshold, >= 1) that ranks the next steps it points to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from epiflow.diagnostics import SHARPNESS_RHO

BASELINES = ("distance", "abc", "propensity")  # models that are references, not candidates


@dataclass
class Facts:
    """The report's tables. summary: one row per heldout x model (summary_table); the others may be empty.

    diagnostics: heldout, model, domain_probe_accuracy, domain_probe_chance, separation_train, separation_test,
    sharpness_relative, spurious_share, spurious_groups, screened_out (marks the environment screen dropped; None for
    a model that does not screen), screen_gain, screened_with (the model whose validation fits decided the screen);
    leakage: heldout, model, share_either, aupr_seen,
    aupr_unseen; shift: heldout, feature, w1_raw, w1_normalized; distance: heldout, model, bin, lift;
    calibration: heldout, model, fold, val_prior, test_prior_estimate, test_prior_true; anchors: heldout, anchor,
    scorer, n, aupr; heterogeneity: heldout, feature, lines, coefficients, se, mean, q, df, p, p_adjusted, spurious
    (report_diagnostics.link_heterogeneity over the held-out line's training lines).
    """

    summary: pd.DataFrame
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)
    leakage: pd.DataFrame = field(default_factory=pd.DataFrame)
    shift: pd.DataFrame = field(default_factory=pd.DataFrame)
    distance: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    anchors: pd.DataFrame = field(default_factory=pd.DataFrame)
    heterogeneity: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Finding:
    rule: str
    subject: str  # "lineD / gbm" or "lineD"
    values: dict
    cites: list[str]
    strength: float


def _finite(*values) -> bool:
    return all(v is not None and isinstance(v, int | float | np.floating) and math.isfinite(v) for v in values)


def _candidates(table: pd.DataFrame) -> pd.DataFrame:
    return table[~table.model.isin(BASELINES)] if "model" in table else table


def _joined(facts: Facts, other: pd.DataFrame) -> pd.DataFrame:
    """Candidate summary rows joined with another heldout x model table (empty when it is)."""
    if other.empty:
        return other
    return _candidates(facts.summary).merge(other, on=["heldout", "model"], suffixes=("", "_other"))


# ---- the rules ----------------------------------------------------------------------------------------------------
def generalization_gap(facts: Facts, t: float) -> list[Finding]:
    """train AUPR - test AUPR >= t."""
    out = []
    for r in _candidates(facts.summary).itertuples():
        if _finite(r.gap) and r.gap >= t:
            values = {"gap": r.gap, "train": r.aupr_train, "val": r.aupr_val, "test": r.aupr_test}
            out.append(
                Finding("generalization_gap", f"{r.heldout} / {r.model}", values, ["fig-gap", "tab-summary"], r.gap / t)
            )
    return out


def encodes_cell_line(facts: Facts, t: float) -> list[Finding]:
    """gap >= 0.10 and the domain probe beats chance by >= t on the embedding."""
    out = []
    for r in _joined(facts, facts.diagnostics).itertuples():
        excess = r.domain_probe_accuracy - r.domain_probe_chance if _finite(r.domain_probe_accuracy) else math.nan
        if _finite(r.gap, excess) and r.gap >= 0.10 and excess >= t:
            values = {"gap": r.gap, "probe": r.domain_probe_accuracy, "chance": r.domain_probe_chance}
            out.append(
                Finding("encodes_cell_line", f"{r.heldout} / {r.model}", values, ["tab-diagnostics"], excess / t)
            )
    return out


def threshold_shift(facts: Facts, t: float) -> list[Finding]:
    """The test's best-F1 threshold differs from the validated one by a factor >= t and costs >= 0.05 F1."""
    out = []
    for r in _candidates(facts.summary).itertuples():
        if not _finite(r.threshold, r.oracle_threshold, r.f1, r.oracle_f1) or min(r.threshold, r.oracle_threshold) <= 0:
            continue
        factor = max(r.threshold / r.oracle_threshold, r.oracle_threshold / r.threshold)
        if factor >= t and r.oracle_f1 - r.f1 >= 0.05:
            values = {"oracle": r.oracle_threshold, "chosen": r.threshold, "f1": r.f1, "oracle_f1": r.oracle_f1}
            cites = [f"fig-threshold-{r.heldout}", "tab-summary"]
            out.append(Finding("threshold_shift", f"{r.heldout} / {r.model}", values, cites, factor / t))
    return out


def prior_misestimate(facts: Facts, t: float) -> list[Finding]:
    """The label-free estimate of the held-out positive rate is off from the true rate by >= t (relative)."""
    if facts.calibration.empty:
        return []
    cal = facts.calibration.groupby(["heldout", "model"], as_index=False)[
        ["val_prior", "test_prior_estimate", "test_prior_true"]
    ].mean()
    out = []
    for r in _candidates(cal).itertuples():
        if not _finite(r.test_prior_estimate, r.test_prior_true) or r.test_prior_true <= 0:
            continue
        error = abs(r.test_prior_estimate - r.test_prior_true) / r.test_prior_true
        if error >= t:
            values = {"estimate": r.test_prior_estimate, "true": r.test_prior_true, "val": r.val_prior}
            out.append(Finding("prior_misestimate", f"{r.heldout} / {r.model}", values, ["tab-calibration"], error / t))
    return out


def calibration_error(facts: Facts, t: float) -> list[Finding]:
    """Test ECE after calibration >= t."""
    out = []
    for r in _candidates(facts.summary).itertuples():
        if _finite(r.ece) and r.ece >= t:
            values = {"ece": r.ece, "ece_raw": r.ece_raw}
            out.append(
                Finding(
                    "calibration_error", f"{r.heldout} / {r.model}", values, [f"fig-reliability-{r.heldout}"], r.ece / t
                )
            )
    return out


def precision_recall_imbalance(facts: Facts, t: float) -> list[Finding]:
    """|precision - recall| >= t at the validated threshold on test."""
    out = []
    for r in _candidates(facts.summary).itertuples():
        if _finite(r.precision, r.recall) and abs(r.precision - r.recall) >= t:
            values = {"precision": r.precision, "recall": r.recall, "threshold": r.threshold}
            strength = abs(r.precision - r.recall) / t
            out.append(
                Finding("precision_recall_imbalance", f"{r.heldout} / {r.model}", values, ["tab-summary"], strength)
            )
    return out


def locus_leakage(facts: Facts, t: float) -> list[Finding]:
    """Share of test pairs whose enhancer or promoter is in the fold's training pool >= t."""
    out = []
    for r in _candidates(facts.leakage).itertuples() if not facts.leakage.empty else []:
        if _finite(r.share_either) and r.share_either >= t:
            values = {"share": r.share_either, "aupr_seen": r.aupr_seen, "aupr_unseen": r.aupr_unseen}
            out.append(
                Finding("locus_leakage", f"{r.heldout} / {r.model}", values, ["tab-leakage"], r.share_either / t)
            )
    return out


def no_better_than_distance(facts: Facts, t: float) -> list[Finding]:
    """A candidate's test AUPR is less than t above the distance baseline's."""
    s = facts.summary
    base = s[s.model == "distance"].set_index("heldout")["aupr_test"]
    out = []
    for r in _candidates(s).itertuples():
        if r.heldout in base.index and _finite(r.aupr_test, base[r.heldout]) and r.aupr_test - base[r.heldout] < t:
            values = {"aupr": r.aupr_test, "distance": base[r.heldout]}
            strength = 1 + (t - (r.aupr_test - base[r.heldout])) / t
            out.append(
                Finding("no_better_than_distance", f"{r.heldout} / {r.model}", values, ["tab-summary"], strength)
            )
    return out


def distance_only(facts: Facts, t: float) -> list[Finding]:
    """Mean within-distance-bin lift (AUPR / positive rate) < t: little beyond distance is ranked."""
    if facts.distance.empty:
        return []
    lift = facts.distance.groupby(["heldout", "model"], as_index=False)["lift"].mean()
    out = []
    for r in _candidates(lift).itertuples():
        if _finite(r.lift) and r.lift < t:
            cites = [f"fig-distance-{r.heldout}"]
            out.append(
                Finding("distance_only", f"{r.heldout} / {r.model}", {"lift": r.lift}, cites, t / max(r.lift, 1e-6))
            )
    return out


def feature_shift(facts: Facts, t: float) -> list[Finding]:
    """Features whose W1 after per-line normalization >= t (in SD units): a change of shape, not only scale."""
    out = []
    for heldout, rows in facts.shift.groupby("heldout") if not facts.shift.empty else []:
        hit = rows[rows.w1_normalized >= t].sort_values("w1_normalized", ascending=False)
        if len(hit):
            top = hit.iloc[0]
            values = {"features": ", ".join(hit.feature.head(3)), "n": len(hit), "w1": top.w1_normalized}
            out.append(Finding("feature_shift", heldout, values, [f"fig-shift-{heldout}"], top.w1_normalized / t))
    return out


def batch_shift(facts: Facts, t: float) -> list[Finding]:
    """Median raw W1 across features >= t while normalization removes most of it: a per-line scale (batch) shift."""
    out = []
    for heldout, rows in facts.shift.groupby("heldout") if not facts.shift.empty else []:
        raw, norm = rows.w1_raw.median(), rows.w1_normalized.median()
        if raw >= t and norm <= 0.5 * raw:
            out.append(
                Finding("batch_shift", heldout, {"raw": raw, "normalized": norm}, [f"fig-shift-{heldout}"], raw / t)
            )
    return out


def _rho(row) -> float:
    """The relative perturbation size the sharpness was measured at (diagnostics.SHARPNESS_RHO when not recorded)."""
    rho = getattr(row, "sharpness_rho", math.nan)
    return rho if _finite(rho) else SHARPNESS_RHO


def sharp_minimum(facts: Facts, t: float) -> list[Finding]:
    """Relative training-loss increase under random weight perturbations >= t."""
    out = []
    for r in _joined(facts, facts.diagnostics).itertuples() if not facts.diagnostics.empty else []:
        if _finite(r.sharpness_relative) and r.sharpness_relative >= t:
            values = {"sharpness": r.sharpness_relative, "gap": r.gap, "rho": _rho(r)}
            out.append(
                Finding(
                    "sharp_minimum", f"{r.heldout} / {r.model}", values, ["tab-diagnostics"], r.sharpness_relative / t
                )
            )
    return out


def flat_minimum(facts: Facts, t: float) -> list[Finding]:
    """gap >= 0.10 yet the relative loss increase under weight perturbation < t: sharpness does not explain the gap
    (the seed's sharp-minimum hypothesis, measured and not supported)."""
    out = []
    for r in _joined(facts, facts.diagnostics).itertuples() if not facts.diagnostics.empty else []:
        if _finite(r.sharpness_relative, r.gap) and r.gap >= 0.10 and r.sharpness_relative < t:
            values = {"sharpness": r.sharpness_relative, "gap": r.gap, "rho": _rho(r)}
            strength = 1 + (t - max(r.sharpness_relative, 0.0)) / t
            out.append(Finding("flat_minimum", f"{r.heldout} / {r.model}", values, ["tab-diagnostics"], strength))
    return out


def geometry_collapse(facts: Facts, t: float) -> list[Finding]:
    """Class separation in the embedding on test <= t x the separation on train."""
    out = []
    for r in _joined(facts, facts.diagnostics).itertuples() if not facts.diagnostics.empty else []:
        if _finite(r.separation_train, r.separation_test) and r.separation_train > 0:
            ratio = r.separation_test / r.separation_train
            if ratio <= t:
                values = {"train": r.separation_train, "test": r.separation_test, "ratio": ratio}
                cites = ["tab-diagnostics"]
                out.append(
                    Finding("geometry_collapse", f"{r.heldout} / {r.model}", values, cites, t / max(ratio, 1e-6))
                )
    return out


def spurious_reliance(facts: Facts, t: float) -> list[Finding]:
    """Share of permutation importance on the named spurious columns >= t."""
    out = []
    for r in _joined(facts, facts.diagnostics).itertuples() if not facts.diagnostics.empty else []:
        if _finite(r.spurious_share) and r.spurious_share >= t:
            values = {"share": r.spurious_share, "columns": ", ".join(r.spurious_groups or [])}
            out.append(
                Finding(
                    "spurious_reliance", f"{r.heldout} / {r.model}", values, ["tab-diagnostics"], r.spurious_share / t
                )
            )
    return out


def screened_out(facts: Facts, t: float) -> list[Finding]:
    """The environment screen dropped marks and that raised the validation lines' AUPR by >= t."""
    out = []
    for r in _joined(facts, facts.diagnostics).itertuples() if not facts.diagnostics.empty else []:
        marks = getattr(r, "screened_out", None)
        gain = getattr(r, "screen_gain", math.nan)
        if isinstance(marks, list) and marks and _finite(gain) and gain >= t:
            screener = getattr(r, "screened_with", None)
            values = {
                "marks": ", ".join(marks),
                "gain": gain,
                "screener": screener if isinstance(screener, str) else r.model,
            }
            out.append(Finding("screened_out", f"{r.heldout} / {r.model}", values, ["tab-diagnostics"], gain / t))
    return out


def _per_line(row) -> str:
    return ", ".join(f"{line} {c:.2f}" for line, c in zip(row.lines, row.coefficients, strict=True))


def link_differs(facts: Facts, t: float) -> list[Finding]:
    """Features whose link to the label differs between the training lines: Cochran's Q, Bonferroni p < t. Strength:
    1 + one per decade of p below t, at most 4."""
    out = []
    table = facts.heterogeneity
    for heldout, rows in table.groupby("heldout") if not table.empty else []:
        hit = rows[rows.p_adjusted < t].sort_values("q", ascending=False)
        if len(hit):
            top = hit.iloc[0]
            features = "; ".join(f"{r.feature} ({_per_line(r)})" for r in hit.head(3).itertuples())
            values = {"n": len(hit), "features": features, "q": top.q, "p": top.p_adjusted}
            strength = min(4.0, 1 + math.log10(t / max(top.p_adjusted, 1e-300)))
            out.append(Finding("link_differs", heldout, values, ["tab-heterogeneity"], strength))
    return out


def cue_indistinct(facts: Facts, t: float) -> list[Finding]:
    """The named spurious cue links to the label alike in every training line: none of its columns has Bonferroni
    p < t (the finding cites the column the lines weigh most). No method that learns from these lines can single it
    out. Strength: 1 + one per decade of that column's p above t."""
    out = []
    table = facts.heterogeneity
    if table.empty or "spurious" not in table:
        return out
    for heldout, rows in table.dropna(subset=["q"]).groupby("heldout"):
        cues = rows[rows.spurious]
        if cues.empty:
            continue
        cue = cues.loc[cues["mean"].abs().idxmax()]
        if (cues.p_adjusted >= t).all():
            values = {"feature": cue.feature, "per_line": _per_line(cue), "q": cue.q, "p": cue.p_adjusted}
            values |= {"more": int((rows.q > cue.q).sum()), "total": len(rows)}
            strength = 1 + math.log10(cue.p_adjusted / t)
            out.append(Finding("cue_indistinct", heldout, values, ["tab-heterogeneity"], strength))
    return out


def selection_gap(facts: Facts, t: float) -> list[Finding]:
    """The candidate validation chooses (report_facts.validation_choice) trails the best candidate on test by >= t AUPR:
    naming the winner after seeing the held-out line would overstate what one can deploy for an unseen line."""
    out = []
    table = _candidates(facts.summary)
    if "chosen" not in table:
        return out
    for heldout, rows in table.dropna(subset=["aupr_test"]).groupby("heldout"):
        chosen = rows[rows.chosen]
        if chosen.empty:
            continue
        pick, best = chosen.iloc[0], rows.loc[rows.aupr_test.idxmax()]
        diff = float(best.aupr_test - pick.aupr_test)
        if diff >= t:
            values = {"chosen": pick.model, "chosen_val": pick.aupr_val_lines, "chosen_test": pick.aupr_test}
            values |= {"best": best.model, "best_test": best.aupr_test, "diff": diff}
            out.append(Finding("selection_gap", heldout, values, ["tab-summary"], diff / t))
    return out


def anchor_gap(facts: Facts, t: float) -> list[Finding]:
    """An external anchor and the best candidate differ by >= t AUPR on identical pairs."""
    out = []
    for (heldout, anchor), rows in facts.anchors.groupby(["heldout", "anchor"]) if not facts.anchors.empty else []:
        own = rows[rows.scorer == anchor]
        models = _candidates(rows.rename(columns={"scorer": "model"}))
        models = models[models.model != anchor].dropna(subset=["aupr"])
        if own.empty or models.empty or not _finite(own.aupr.iloc[0]):
            continue
        best = models.loc[models.aupr.idxmax()]
        diff = float(best.aupr - own.aupr.iloc[0])
        if abs(diff) >= t:
            values = {"anchor": anchor, "anchor_aupr": own.aupr.iloc[0], "model": best.model, "aupr": best.aupr}
            values |= {"n": int(own.n.iloc[0]), "diff": diff}
            out.append(Finding("anchor_gap", heldout, values, ["tab-anchors"], abs(diff) / t))
    return out
