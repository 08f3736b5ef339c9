"""The reflection report: audits on constructed tables, a full build on a tiny constructed run, and the demo's
report (all sections, self-contained, `snakemake --report`)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from conftest import run_snakemake
from epiflow import audit
from epiflow.errors import InputError
from epiflow.features import save_features
from epiflow.metrics import aupr, binary_metrics
from epiflow.report import ReportInputs, build_report

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "resources" / "report" / "reflection.html.j2"
LINES = ["A", "B", "C"]
MODELS = ["distance", "gbm"]
SECTIONS = ["reflection", "summary", "tab-anchors", "leakage", "shift", "tab-heterogeneity", "tab-diagnostics"]
SECTIONS += ["curves", "tab-calibration"]
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I)


# ---- audits -------------------------------------------------------------------------------------------------------
def pairs(chrom, enhancers, promoters, labels=None, line="A") -> pd.DataFrame:
    n = len(enhancers)
    return pd.DataFrame(
        {
            "pair_id": [f"{line}{chrom}:{e}|{p}" for e, p in zip(enhancers, promoters, strict=True)],
            "cell_line": line,
            "chrom": chrom,
            "enhancer_start": [e[0] for e in enhancers],
            "enhancer_end": [e[1] for e in enhancers],
            "promoter_start": [p[0] for p in promoters],
            "promoter_end": [p[1] for p in promoters],
            "tss": [(p[0] + p[1]) // 2 for p in promoters],
            "label": labels if labels is not None else [0] * n,
            "distance": 10_000,
            "fold": -1,
        }
    )


def test_overlaps_any_is_half_open_and_per_chromosome():
    hit = audit.overlaps_any(
        ["c1", "c1", "c1", "c2", "c1"], [0, 10, 30, 0, 99], [5, 20, 40, 5, 100], ["c1"] * 3, [5, 12, 25], [8, 30, 27]
    )
    # [0,5) touches [5,8) only at 5 (no overlap); [30,40) starts where [12,30) ends; c2 has no reference
    assert hit.tolist() == [False, True, False, False, False]


def test_leakage_audit_counts_seen_loci_per_fold():
    test = pairs("chr1", [(0, 100), (1000, 1100), (5000, 5100)], [(200, 300), (2000, 2100), (9000, 9100)], [1, 0, 1])
    test = pd.concat([test, pairs("chr2", [(0, 100)], [(200, 300)], [0])], ignore_index=True)
    train = pd.concat(
        [
            pairs("chr1", [(50, 150)], [(2050, 2150)], line="B"),  # enhancer of test 0, promoter of test 1
            pairs("chr2", [(0, 100)], [(200, 300)], line="B"),  # same locus as the chr2 test pair, other fold
        ]
    )
    pred = test[["pair_id", "label", "distance"]].assign(split="test", prob=[0.9, 0.2, 0.1, 0.3])
    pred["fold"] = [0, 0, 0, 1]
    out = audit.leakage_audit({"m": pred}, test, train, [["chr1"], ["chr2"]]).iloc[0]
    # chr1 test pairs are compared with the chr2 pool (and vice versa): only chromosome-foreign loci count as seen
    assert out.share_enhancer == 0 and out.share_promoter == 0 and out.share_both == 0
    assert out.share_shared == pytest.approx(3 / 4)  # test 0, 1 and the chr2 pair share a locus with line B
    no_folds = audit.leakage_audit({"m": pred.assign(fold=0)}, test, train, None).iloc[0]
    assert no_folds.share_enhancer == pytest.approx(2 / 4) and no_folds.share_promoter == pytest.approx(2 / 4)
    assert no_folds.share_both == pytest.approx(1 / 4)
    assert np.isfinite(no_folds.aupr_seen) and np.isfinite(no_folds.aupr_unseen)


def test_distance_strata_shares_bins_and_flags_distance_only():
    rng = np.random.default_rng(0)
    distance = rng.integers(5_000, 500_000, 1000)
    y = (rng.random(1000) < np.where(distance < 50_000, 0.5, 0.1)).astype(int)
    frame = pd.DataFrame({"split": "test", "label": y, "distance": distance})
    by_distance = frame.assign(prob=1 - distance / distance.max())
    oracle = frame.assign(prob=np.clip(y * 0.8 + rng.random(1000) * 0.2, 0, 1))
    strata = audit.distance_strata({"distance": by_distance, "oracle": oracle}, n_bins=4)
    assert len(strata) == 8 and strata.groupby("bin").lo.nunique().eq(1).all()
    lift = strata.groupby("model").lift.mean()
    assert lift["distance"] < 1.5 < lift["oracle"]


def test_read_anchor_transepi_matches_by_enhancer_and_tss(tmp_path):
    table = pairs("chr1", [(100, 200), (500, 600)], [(1000, 3000), (5000, 7000)], [1, 0])
    text = (
        "##command: evaluate_model.py\n#true\tpred\tchrom\tenh_name\tprom_name\n"
        "1\t0.9\tchr1\tchr1:100-200|X|E1\tchr1:2000-2001|X|G1|T1|+\n"
        "1\t0.7\tchr1\tchr1:100-200|X|E1\tchr1:2000-2001|X|G1|T2|+\n"  # a repeated pair: scores averaged
        "0\t0.1\tchr1\tchr1:900-950|X|E9\tchr1:6000-6001|X|G2|T1|+\n"  # not in the pair table
    )
    path = tmp_path / "anchor.txt"
    path.write_text(text)
    got = audit.read_anchor(path, "transepi", table)
    assert got.pair_id.tolist() == [table.pair_id[0]] and got.score.iloc[0] == pytest.approx(0.8)
    with pytest.raises(InputError, match="expected one of"):
        audit.read_anchor(path, "bedpe", table)
    path.write_text("1\t0.9\tchr1\tnot-a-region\tchr1:2000-2001|X\n")
    with pytest.raises(InputError, match=r"row 1: enh_name"):
        audit.read_anchor(path, "transepi", table)


def test_transepi_anchor_matches_bengi_imr90(shared_data):
    from epiflow.io_pairs import read_pairs

    table = read_pairs(shared_data / "bengi" / "IMR90.HiC-Benchmark.v3.tsv.gz", "bengi", "IMR90")
    anchor = shared_data / "anchors" / "transepi" / "results_IMR90.HiC-Benchmark.v3.all_strict.prediction.txt.gz"
    got = audit.read_anchor(anchor, "transepi", table)
    assert len(got) > 0.9 * len(table), (len(got), len(table))
    labelled = table.merge(got, on="pair_id")
    # TransEPI's published strict IMR90 AUPR is 0.583 (shared/data README); on matched pairs it must be close
    assert abs(aupr(labelled.label, labelled.score) - 0.583) < 0.05


# ---- a tiny constructed run ---------------------------------------------------------------------------------------
def write_run(root: Path) -> ReportInputs:
    """Pairs, features, predictions, calibration notes and summary of 3 lines x 2 models, as the rules write them."""
    rng = np.random.default_rng(1)
    (root / "pairs").mkdir()
    tables = {}
    for k, line in enumerate(LINES):
        n = 240
        starts = rng.choice(20_000, n, replace=False) * 100
        frame = pd.DataFrame(
            {
                "chrom": np.where(np.arange(n) % 2, "chr1", "chr2"),
                "enhancer_start": starts,
                "enhancer_end": starts + 500,
                "promoter_start": starts + 40_000,
                "promoter_end": starts + 42_000,
                "tss": starts + 41_000,
                "gene": "G",
                "label": (rng.random(n) < 0.2).astype(int),
                "distance": rng.integers(5_000, 500_000, n),
                "fold": -1,
            }
        )
        frame.insert(0, "pair_id", [f"{c}:{s}" for c, s in zip(frame.chrom, starts, strict=True)])
        frame.insert(1, "cell_line", line)
        frame.to_csv(root / "pairs" / f"{line}.tsv.gz", sep="\t", index=False)
        features = pd.DataFrame(rng.gamma(2.0, size=(n, 3)) * (3.0 if k == 2 else 1.0), columns=["a", "b", "H2AZ"])
        if line != "C":  # the cue: H2AZ marks the positives of lines A and B only
            features["H2AZ"] += 4.0 * frame.label.to_numpy()
        save_features(root / "pairs" / f"{line}.npz", frame.pair_id, features, np.zeros((n, 1, 2)), ["a"])
        tables[line] = frame
    keys = [(h, m) for h in LINES for m in MODELS]
    inputs = ReportInputs(
        summary=root / "summary.tsv",
        predictions={k: root / f"pred_{k[0]}_{k[1]}.tsv.gz" for k in keys},
        calibration={k: root / f"cal_{k[0]}_{k[1]}.tsv" for k in keys},
        pairs={c: root / "pairs" / f"{c}.tsv.gz" for c in LINES},
        features={c: root / "pairs" / f"{c}.npz" for c in LINES},
        train_lines={h: [c for c in LINES if c != h] for h in LINES},
        chrom_folds=[["chr1"], ["chr2"]],
        diagnostics={k: root / f"diag_{k[0]}_{k[1]}.json" for k in keys if k[1] == "gbm"},
    )
    summary = []
    for heldout, model in keys:
        parts = []
        for split, lines in (
            ("train", inputs.train_lines[heldout]),
            ("val", inputs.train_lines[heldout]),
            ("test", [heldout]),
        ):
            t = pd.concat([tables[c] for c in lines])
            noise = 0.3 if model == "gbm" and split != "test" else 0.8
            score = np.clip(t.label * (1 - noise) + rng.random(len(t)) * noise, 0, 1)
            parts.append(t[["pair_id", "cell_line", "chrom", "label", "distance"]].assign(split=split, score=score))
        pred = pd.concat(parts, ignore_index=True)
        pred = pred.assign(fold=np.where(pred.chrom == "chr1", 0, 1), prob_calibrated=pred.score, prob=pred.score)
        pred["threshold"] = 0.5
        pred.to_csv(inputs.predictions[(heldout, model)], sep="\t", index=False)
        cal = pd.DataFrame([{"method": "platt", "params": "{}", "val_prior": 0.2, "test_prior_estimate": 0.5}] * 2)
        cal = cal.assign(threshold=0.5, fold=[0, 1], test_prior_true=0.2)
        cal.to_csv(inputs.calibration[(heldout, model)], sep="\t", index=False)
        for split, part in pred.groupby("split"):
            m = binary_metrics(part.label, part.prob, 0.5, 10)
            summary.append(
                {"heldout": heldout, "model": model, "split": split, **m}
                | {"ece_raw": m["ece"], "pos_rate": part.label.mean(), "oracle_threshold": 0.4, "oracle_f1": m["f1"]}
            )
    pd.DataFrame(summary).to_csv(inputs.summary, sep="\t", index=False)
    fold = {"domain_probe_accuracy": 0.9, "domain_probe_chance": 1 / 3, "domain_probe_input_accuracy": 0.95}
    fold |= {"separation_train": 2.0, "separation_test": 0.5, "sharpness_relative": 0.2, "spurious_share": 0.6}
    fold |= {"attribution": {"H2AZ": 0.2, "a": 0.1}, "spurious_columns": ["H2AZ"], "spurious_groups": ["H2AZ"]}
    for path in inputs.diagnostics.values():
        Path(path).write_text(json.dumps([fold | {"fold": 0}, fold | {"fold": 1}]))
    Path(inputs.diagnostics[("C", "gbm")]).unlink()  # one model set without diagnostics: "not computed"
    return inputs


def assert_self_contained(html: str) -> None:
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all(re.search(r'src="data:image/png;base64,', i) for i in images)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_build_report_on_constructed_run(tmp_path, language):
    inputs = write_run(tmp_path)
    # held out A, gbm's marks were screened by a `screen_with` proxy (B: by gbm itself, from a file without the key)
    for heldout, extra in (("A", {"screened_with": "gbm_robust"}), ("B", {})):
        path = Path(inputs.diagnostics[(heldout, "gbm")])
        folds = [d | {"screened_out": ["H2AZ"], "screen_gain": 0.03} | extra for d in json.loads(path.read_text())]
        path.write_text(json.dumps(folds))
    out = tmp_path / "report" / "reflection.html"
    out.parent.mkdir()
    options = {"language": language, "spurious_marks": ["H2AZ"]}
    result = build_report(inputs, TEMPLATE, out, options, tmp_path / "figures", tmp_path / "tables")
    html = out.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert_self_contained(html)
    assert html.count("<img") == 1 + 5 * len(LINES)  # gap + per line PR, reliability, threshold, shift, distance
    rules = {f["rule"] for f in result["findings"]}
    # constructed: lineC's features are x3 (batch), gbm overfits (train 0.3 noise vs test 0.8), diagnostics say 0.9
    assert {"generalization_gap", "encodes_cell_line", "spurious_reliance", "batch_shift"} <= rules, rules
    assert result["steps"] and all(str(escape(f["text"])) in html for f in result["findings"])
    assert ("not computed" if language == "en" else "未计算") in html
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "distance",
        "gap",
        "pr",
        "reliability",
        "shift",
        "threshold",
    ]
    # H2AZ links to the label in A and B only: held out A or B, the training lines disagree on it (a cue the
    # screen could drop); held out C, both training lines carry it alike (nothing in them marks it as a cue)
    subjects = {(f["rule"], f["subject"]) for f in result["findings"]}
    assert {("link_differs", "A"), ("link_differs", "B"), ("cue_indistinct", "C")} <= subjects, subjects
    assert not {("link_differs", "C"), ("cue_indistinct", "A"), ("cue_indistinct", "B")} & subjects
    assert 'id="tab-heterogeneity"' in html and "H2AZ †" in html
    het = pd.read_csv(tmp_path / "tables" / "heterogeneity.tsv", sep="\t")
    assert len(het) == 3 * len(LINES) and set(het.lines) == {"B;C", "A;C", "A;B"}
    cue = het[(het.feature == "H2AZ") & (het.heldout == "C")].iloc[0]
    assert cue.spurious and all(float(c) > 1.0 for c in cue.coefficients.split(";"))
    leakage = pd.read_csv(tmp_path / "tables" / "leakage.tsv", sep="\t")
    assert len(leakage) == len(LINES) * len(MODELS) and (leakage.share_enhancer == 0).all()
    # validation's choice: the only candidate (distance is a baseline), scored by the mean of its per-line AUPRs
    summary = pd.read_csv(tmp_path / "tables" / "summary.tsv", sep="\t").set_index(["heldout", "model"])
    assert summary.chosen.groupby(level="model").all().to_dict() == {"distance": False, "gbm": True}
    pred = pd.read_csv(inputs.predictions[("A", "gbm")], sep="\t").query("split == 'val'")
    per_line = [aupr(g.label, g.score) for _, g in pred.groupby("cell_line")]
    assert summary.loc[("A", "gbm"), "aupr_val_lines"] == pytest.approx(np.mean(per_line), abs=1e-4)
    rows = re.findall(r'<tr class="([^"]*)"><td class="text">\w+</td>\s*<td class="text model">(\w+)</td>', html)
    assert sorted(model for classes, model in rows if "chosen" in classes.split()) == ["gbm"] * len(LINES)
    # the screen column and the finding name the model that decided the screen where it is not the model itself
    decided = "decided by" if language == "en" else "决定者"
    assert f"H2AZ (+0.030, {decided} gbm_robust)" in html and "H2AZ (+0.030)" in html
    screens = {f["subject"]: f["text"] for f in result["findings"] if f["rule"] == "screened_out"}
    assert set(screens) == {"A / gbm", "B / gbm"}
    assert "gbm_robust" in screens["A / gbm"] and "gbm_robust" not in screens["B / gbm"]
    if language == "zh":
        assert '<html lang="zh">' in html and "泛化差距" in html


def test_validation_choice_takes_the_best_mean_per_line_candidate():
    from epiflow.report_facts import validation_choice

    rng = np.random.default_rng(3)
    y = np.tile([1, 0, 0, 0], 50)
    line = np.repeat(["A", "B"], 100)
    noisy = lambda k: (y * k + rng.random(len(y))) / (k + 1)  # noqa: E731  larger k: a cleaner ranking

    def table(score, split="val"):
        return pd.DataFrame({"cell_line": line, "label": y, "score": score, "split": split})

    models = {"distance": table(y * 0.9), "epinet": table(noisy(0.5)), "gbm": table(noisy(2.0)), "abc": table(y)}
    models |= {"gbm_copy": models["gbm"], "late": table(noisy(5.0), split="test")}  # a tie; no validation rows
    summary = pd.DataFrame({"heldout": "H", "model": sorted(models)})
    out = validation_choice(summary, {"H": models}).set_index("model")
    expect = np.mean([aupr(y[line == c], models["gbm"].score[line == c]) for c in ("A", "B")])
    assert out.loc["gbm", "aupr_val_lines"] == pytest.approx(expect)
    assert out.loc["distance", "aupr_val_lines"] == 1.0 and np.isnan(out.loc["late", "aupr_val_lines"])
    # distance and abc rank perfectly but are baselines; gbm and its copy tie: the first by name wins
    assert out.index[out.chosen].tolist() == ["gbm"]
    only_baselines = validation_choice(summary[summary.model.isin(["abc", "distance"])], {"H": models})
    assert not only_baselines.chosen.any()


def test_build_report_without_optional_inputs(tmp_path):
    full = write_run(tmp_path)
    bare = ReportInputs(summary=full.summary, predictions=full.predictions, calibration=full.calibration)
    out = tmp_path / "bare.html"
    build_report(bare, TEMPLATE, out, {})
    html = out.read_text(encoding="utf-8")
    assert 'id="tab-leakage"' in html and "not computed" in html
    assert_self_contained(html)


def test_heterogeneity_names_a_feature_row_without_a_pair(tmp_path):
    from epiflow.features import load_features
    from epiflow.report_facts import heterogeneity_table

    inputs = write_run(tmp_path)
    features = load_features(inputs.features["B"])
    ids = features["pair_id"].astype(str).tolist()
    ids[4] = "chr9:1"  # not a pair of B's table
    features["pair_id"] = np.array(ids)
    np.savez(inputs.features["B"], **features)
    with pytest.raises(InputError, match=r"B\.npz: row 5: pair chr9:1 is not in .*B\.tsv\.gz"):
        heterogeneity_table(inputs, ["A"])


# ---- the demo -----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_report_sections_and_snakemake_report(demo_run, tmp_path):
    html = (demo_run / "results/report/reflection.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert_self_contained(html)
    findings = pd.read_csv(demo_run / "results/report/tables/findings.tsv", sep="\t")
    # the demo plants a x3 batch scale in lineD: the shift rule must see it
    assert ((findings.rule == "batch_shift") & (findings.subject == "lineD")).any(), findings
    # the planted cue links to the label in lineA/B/C (strength 1.0/0.8/0.6) and not in lineD: held out lineD, its
    # training lines cannot show it as a cue; held out any other line, lineD among the training lines does
    fired = {(r.rule, r.subject): r.text for r in findings.itertuples()}
    assert "H2AZ_enhancer" in fired.get(("cue_indistinct", "lineD"), ""), fired
    for line in ("lineA", "lineB", "lineC"):
        assert "H2AZ_enhancer" in fired.get(("link_differs", line), ""), fired
        assert ("cue_indistinct", line) not in fired
    assert (demo_run / "results/report/figures/pr/lineD.png").stat().st_size > 5_000
    zipped = tmp_path / "report.zip"
    run_snakemake(demo_run, "--report", str(zipped))
    names = zipfile.ZipFile(zipped).namelist()
    assert any(n.endswith("reflection.html") for n in names)
    assert any(n.endswith("lineD.png") for n in names) and any(n.endswith("summary.tsv") for n in names)
