"""The reflection narrative: findings derived from the measured numbers by explicit rules, then ranked next steps.

Each rule is a check over `Facts` (the report's tables; the checks are in epiflow.narrative_checks) with its
threshold and next step in the RULES table. A fired rule returns Findings; each cites the numbers it rests on
(`values`) and the figure/table anchors of the report (`cites`), and has a `strength` (how far past its threshold,
>= 1) that ranks the next steps it points to. The wording lives in resources/report/messages/<language>.yaml; this
module and the checks only decide what is true.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from epiflow import narrative_checks as checks
from epiflow.narrative_checks import BASELINES as BASELINES  # re-exported: the report reads it from here
from epiflow.narrative_checks import Facts, Finding


@dataclass(frozen=True)
class Rule:
    key: str
    threshold: float
    check: Callable[[Facts, float], list[Finding]]
    next_step: str | None  # None: the finding rules a hypothesis out and points to no step


RULES = (
    Rule("generalization_gap", 0.10, checks.generalization_gap, "regularize"),
    Rule("encodes_cell_line", 0.25, checks.encodes_cell_line, "invariance"),
    Rule("spurious_reliance", 0.20, checks.spurious_reliance, "invariance"),
    Rule("screened_out", 0.005, checks.screened_out, "invariance"),
    Rule("threshold_shift", 2.0, checks.threshold_shift, "recalibrate"),
    Rule("prior_misestimate", 0.5, checks.prior_misestimate, "recalibrate"),
    Rule("calibration_error", 0.10, checks.calibration_error, "recalibrate"),
    Rule("precision_recall_imbalance", 0.30, checks.precision_recall_imbalance, "threshold_rule"),
    Rule("locus_leakage", 0.05, checks.locus_leakage, "split"),
    Rule("no_better_than_distance", 0.02, checks.no_better_than_distance, "topology"),
    Rule("distance_only", 1.5, checks.distance_only, "topology"),
    Rule("batch_shift", 1.0, checks.batch_shift, "normalize"),
    Rule("feature_shift", 0.3, checks.feature_shift, "invariance"),
    Rule("link_differs", 0.01, checks.link_differs, "invariance"),
    Rule("cue_indistinct", 0.01, checks.cue_indistinct, "environments"),
    Rule("sharp_minimum", 0.5, checks.sharp_minimum, "regularize"),
    Rule("flat_minimum", 0.10, checks.flat_minimum, None),  # a hypothesis refuted: it points to no step
    Rule("geometry_collapse", 0.7, checks.geometry_collapse, "regularize"),
    Rule("anchor_gap", 0.02, checks.anchor_gap, "architecture"),
    Rule("selection_gap", 0.02, checks.selection_gap, "select"),
)


# ---- narrative ----------------------------------------------------------------------------------------------------
def findings(facts: Facts, rules=RULES) -> list[Finding]:
    """Every fired rule's findings, strongest first within each rule (rules keep their table order)."""
    out = []
    for rule in rules:
        out.extend(sorted(rule.check(facts, rule.threshold), key=lambda f: -f.strength))
    return out


def next_steps(found: list[Finding], rules=RULES) -> list[dict]:
    """Next steps ranked by the strongest evidence pointing to them: step, strength, rules (that fired)."""
    step_of = {r.key: r.next_step for r in rules}
    steps: dict[str, dict] = {}
    for f in found:
        if step_of[f.rule] is None:
            continue
        s = steps.setdefault(step_of[f.rule], {"step": step_of[f.rule], "strength": 0.0, "rules": []})
        s["strength"] = max(s["strength"], f.strength)
        if f.rule not in s["rules"]:
            s["rules"].append(f.rule)
    return sorted(steps.values(), key=lambda s: -s["strength"])


def load_messages(language: str, directory: str | Path) -> dict:
    """Message templates of `language` over the English ones (a missing key falls back to English)."""
    directory = Path(directory)
    english = yaml.safe_load((directory / "en.yaml").read_text(encoding="utf-8"))
    if language == "en":
        return english
    local = yaml.safe_load((directory / f"{language}.yaml").read_text(encoding="utf-8"))
    return {section: english.get(section, {}) | local.get(section, {}) for section in english}


def render_findings(found: list[Finding], messages: dict) -> list[dict]:
    """Findings as text: rule, subject, text (template filled with the cited numbers), cites, strength."""
    out = []
    for f in found:
        text = messages["findings"][f.rule].format(subject=f.subject, **f.values)
        out.append({"rule": f.rule, "subject": f.subject, "text": text, "cites": f.cites, "strength": f.strength})
    return out
