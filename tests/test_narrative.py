"""Each narrative rule fires on a constructed metrics table that meets it and stays silent on one that does not."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd
import pytest

from epiflow import narrative, narrative_checks

MESSAGES = Path(__file__).resolve().parents[1] / "resources" / "report" / "messages"


def healthy() -> narrative.Facts:
    """A run with no problem past any threshold: small gap, calibrated, no leakage, no shift, beats distance."""
    summary = pd.DataFrame(
        [
            {"heldout": "L", "model": "distance", "aupr_train": 0.30, "aupr_val": 0.30, "aupr_test": 0.30},
            {"heldout": "L", "model": "gbm", "aupr_train": 0.80, "aupr_val": 0.78, "aupr_test": 0.75},
            {"heldout": "L", "model": "epinet", "aupr_train": 0.79, "aupr_val": 0.77, "aupr_test": 0.74},
        ]
    )
    # validation chooses gbm (report_facts.validation_choice), which is also best on test
    summary = summary.assign(aupr_val_lines=summary.aupr_val - 0.01, chosen=summary.model == "gbm")
    summary = summary.assign(
        pos_rate=0.2, threshold=0.30, oracle_threshold=0.28, f1=0.70, oracle_f1=0.72, precision=0.70, recall=0.70
    )
    summary = summary.assign(ece=0.03, ece_raw=0.05, gap=summary.aupr_train - summary.aupr_test)
    one = {"heldout": "L", "model": "gbm"}
    return narrative.Facts(
        summary=summary,
        diagnostics=pd.DataFrame(
            [
                one
                | {"domain_probe_accuracy": 0.40, "domain_probe_chance": 1 / 3, "separation_train": 2.0}
                | {
                    "separation_test": 1.8,
                    "sharpness_relative": 0.10,
                    "spurious_share": 0.05,
                    "spurious_groups": ["H2AZ"],
                    "screened_out": [],  # screened, kept every mark
                    "screen_gain": 0.0,
                }
            ]
        ),
        leakage=pd.DataFrame([one | {"share_either": 0.0, "aupr_seen": math.nan, "aupr_unseen": 0.75}]),
        shift=pd.DataFrame(
            [
                {"heldout": "L", "feature": "H2AZ_enhancer", "w1_raw": 0.2, "w1_normalized": 0.10},
                {"heldout": "L", "feature": "CTCF_window", "w1_raw": 0.3, "w1_normalized": 0.12},
            ]
        ),
        distance=pd.DataFrame([one | {"bin": b, "lift": 3.0} for b in range(3)]),
        calibration=pd.DataFrame(
            [one | {"fold": 0, "val_prior": 0.2, "test_prior_estimate": 0.21, "test_prior_true": 0.2}]
        ),
        anchors=pd.DataFrame(
            [
                {"heldout": "L", "anchor": "X", "scorer": "X", "n": 100, "aupr": 0.75},
                {"heldout": "L", "anchor": "X", "scorer": "gbm", "n": 100, "aupr": 0.76},
            ]
        ),
        # no configured cue, and no feature's link differs between the training lines beyond chance
        heterogeneity=pd.DataFrame(
            [
                {"heldout": "L", "feature": name, "lines": ["A", "B"], "coefficients": [b, b + 0.1], "mean": b + 0.05}
                | {"se": [0.1, 0.1], "q": q, "df": 1, "p": p, "p_adjusted": min(1.0, 2 * p), "spurious": False}
                for name, b, q, p in [("H2AZ_enhancer", 0.9, 0.5, 0.48), ("CTCF_window", -0.1, 0.1, 0.75)]
            ]
        ),
    )


def set_value(table: str, column: str, value, where: str = "gbm"):
    """A modifier: facts.<table>.<column> = value on the rows of model (or anchor scorer) `where`."""

    def apply(facts):
        frame = getattr(facts, table)
        key = "model" if "model" in frame else "scorer" if "scorer" in frame else None
        rows = frame.index if key is None else frame.index[frame[key] == where]
        frame.loc[rows, column] = value

    return apply


def both(*modifiers):
    def apply(facts):
        for m in modifiers:
            m(facts)

    return apply


def screened(marks: list[str]):
    """A modifier: gbm's environment screen dropped `marks` (a list per cell: not settable through .loc)."""

    def apply(facts):
        rows = facts.diagnostics.model == "gbm"
        facts.diagnostics["screened_out"] = [
            marks if hit else kept for hit, kept in zip(rows, facts.diagnostics.screened_out, strict=True)
        ]

    return apply


def gap(value):
    return both(set_value("summary", "aupr_train", 0.75 + value), set_value("summary", "gap", value))


MEETS = {
    "generalization_gap": gap(0.29),
    "encodes_cell_line": both(gap(0.29), set_value("diagnostics", "domain_probe_accuracy", 0.91)),
    "spurious_reliance": set_value("diagnostics", "spurious_share", 0.6),
    "screened_out": both(screened(["H2AZ"]), set_value("diagnostics", "screen_gain", 0.02)),
    # best-F1 threshold 0.01 on test vs 0.31 on validation, and it costs F1
    "threshold_shift": both(
        set_value("summary", "oracle_threshold", 0.01),
        set_value("summary", "threshold", 0.31),
        set_value("summary", "f1", 0.40),
    ),
    "prior_misestimate": set_value("calibration", "test_prior_estimate", 0.7),
    "calibration_error": set_value("summary", "ece", 0.25),
    "precision_recall_imbalance": both(set_value("summary", "precision", 0.26), set_value("summary", "recall", 0.99)),
    "locus_leakage": set_value("leakage", "share_either", 0.4),
    "no_better_than_distance": set_value("summary", "aupr_test", 0.31),
    "distance_only": set_value("distance", "lift", 1.1),
    "batch_shift": both(set_value("shift", "w1_raw", 2.5), set_value("shift", "w1_normalized", 0.1)),
    "feature_shift": set_value("shift", "w1_normalized", 0.6),
    "sharp_minimum": set_value("diagnostics", "sharpness_relative", 1.5),
    "flat_minimum": both(gap(0.3), set_value("diagnostics", "sharpness_relative", 0.01)),
    "geometry_collapse": set_value("diagnostics", "separation_test", 0.4),
    "anchor_gap": set_value("anchors", "aupr", 0.60, where="X"),  # the anchor's own row
    "link_differs": set_value("heterogeneity", "p_adjusted", 1e-6),
    "cue_indistinct": set_value("heterogeneity", "spurious", True),  # the cue's p 0.96: alike in every line
    "selection_gap": set_value("summary", "aupr_test", 0.80, where="epinet"),  # best on test, not chosen
}


def test_every_rule_has_a_case_and_words():
    keys = {r.key for r in narrative.RULES}
    assert keys == set(MEETS)
    for language in ("en", "zh"):
        messages = narrative.load_messages(language, MESSAGES)
        assert keys <= set(messages["findings"])
        assert {r.next_step for r in narrative.RULES} - {None} <= set(messages["next_steps"])


def test_healthy_run_fires_nothing():
    assert narrative.findings(healthy()) == []
    assert narrative.next_steps([]) == []


@pytest.mark.parametrize("rule", [r.key for r in narrative.RULES])
def test_rule_fires_when_met_and_is_silent_otherwise(rule):
    spec = next(r for r in narrative.RULES if r.key == rule)
    assert spec.check(healthy(), spec.threshold) == []
    facts = healthy()
    MEETS[rule](facts)
    fired = spec.check(facts, spec.threshold)
    assert len(fired) == 1, fired
    assert fired[0].rule == rule and fired[0].strength >= 1.0 and fired[0].cites
    for language in ("en", "zh"):  # every cited number fills the wording in both languages
        text = narrative.render_findings(fired, narrative.load_messages(language, MESSAGES))[0]["text"]
        assert fired[0].subject in text


def test_rules_skip_missing_measurements():
    facts = healthy()
    facts.diagnostics = facts.diagnostics.assign(domain_probe_accuracy=math.nan, sharpness_relative=math.nan)
    gap(0.4)(facts)
    found = {f.rule for f in narrative.findings(facts)}
    assert "generalization_gap" in found and not found & {"encodes_cell_line", "sharp_minimum"}
    empty = narrative.Facts(summary=healthy().summary)
    assert narrative.findings(empty) == []


def test_baselines_are_not_judged():
    facts = healthy()
    set_value("summary", "ece", 0.5, where="distance")(facts)
    assert narrative.findings(facts) == []


def test_example_from_the_seed_and_ranking():
    facts = healthy()
    MEETS["encodes_cell_line"](facts)
    MEETS["threshold_shift"](facts)
    found = narrative.findings(facts)
    text = [f["text"] for f in narrative.render_findings(found, narrative.load_messages("en", MESSAGES))]
    assert any("gap 0.29" in t and "0.91" in t and "encodes the cell line" in t for t in text), text
    assert any("0.01" in t and "0.31" in t for t in text), text
    steps = narrative.next_steps(found)
    strengths = [s["strength"] for s in steps]
    assert strengths == sorted(strengths, reverse=True)
    # threshold 0.01 vs 0.31 is 31x (15.5 x the rule's factor 2): the strongest evidence, so recalibration leads
    assert steps[0]["step"] == "recalibrate" and "threshold_shift" in steps[0]["rules"]


def test_cue_rules_read_the_cue_the_lines_weigh_most():
    facts = healthy()
    MEETS["cue_indistinct"](facts)
    (found,) = narrative_checks.cue_indistinct(facts, 0.01)
    assert found.values["feature"] == "H2AZ_enhancer" and found.values["more"] == 0 and found.values["total"] == 2
    text = narrative.render_findings([found], narrative.load_messages("en", MESSAGES))[0]["text"]
    assert "H2AZ_enhancer" in text and "A 0.90, B 1.00" in text
    # one of the cue's columns differing is enough to make it visible, even if the column weighed most does not
    facts.heterogeneity.loc[facts.heterogeneity.feature == "CTCF_window", "p_adjusted"] = 1e-4
    assert narrative_checks.cue_indistinct(facts, 0.01) == []
    # once the cue's link differs between the lines, it is a candidate cue instead, and nothing says "indistinct"
    set_value("heterogeneity", "p_adjusted", 1e-4)(facts)
    assert narrative_checks.cue_indistinct(facts, 0.01) == []
    (differs,) = narrative_checks.link_differs(facts, 0.01)
    assert differs.values["n"] == 2 and differs.strength == pytest.approx(3.0)
    assert differs.values["features"].startswith("H2AZ_enhancer (A 0.90, B 1.00)")  # largest Q first


def test_chinese_falls_back_to_english_for_missing_keys(tmp_path):
    (tmp_path / "en.yaml").write_text("findings: {a: 'A {subject}', b: 'B'}\nui: {title: T}\n", encoding="utf-8")
    (tmp_path / "zh.yaml").write_text("findings: {a: '甲 {subject}'}\n", encoding="utf-8")
    messages = narrative.load_messages("zh", tmp_path)
    assert messages["findings"] == {"a": "甲 {subject}", "b": "B"} and messages["ui"]["title"] == "T"
    zh = copy.deepcopy(messages)
    assert narrative.render_findings([narrative.Finding("a", "L", {}, ["x"], 1.0)], zh)[0]["text"] == "甲 L"


def test_selection_gap_names_the_chosen_and_the_best():
    facts = healthy()
    set_value("summary", "aupr_test", 0.78, where="epinet")(facts)
    set_value("summary", "aupr_test", 0.90, where="distance")(facts)  # a baseline best on test is not a candidate
    (found,) = narrative_checks.selection_gap(facts, 0.02)
    assert found.values["chosen"] == "gbm" and found.values["best"] == "epinet"
    assert found.values["diff"] == pytest.approx(0.03) and found.strength == pytest.approx(1.5)
    text = narrative.render_findings([found], narrative.load_messages("en", MESSAGES))[0]["text"]
    assert "validation chooses gbm" in text and "epinet is best on test (0.780)" in text and "0.030" in text
    facts.summary["chosen"] = False  # no model has a validation score: nothing to compare
    assert narrative_checks.selection_gap(facts, 0.02) == []


def test_screened_out_names_the_model_that_decided_the_screen():
    facts = healthy()
    MEETS["screened_out"](facts)
    (own,) = narrative_checks.screened_out(facts, 0.005)
    assert own.values["screener"] == "gbm"  # no screened_with (files written before it was kept): the model itself
    facts.diagnostics["screened_with"] = "gbm_robust"  # a `screen_with` proxy decided it
    (proxy,) = narrative_checks.screened_out(facts, 0.005)
    for language, words in (("en", "decided by gbm_robust"), ("zh", "由 gbm_robust 决定")):
        text = narrative.render_findings([proxy], narrative.load_messages(language, MESSAGES))[0]["text"]
        assert words in text and "+0.020" in text, text
