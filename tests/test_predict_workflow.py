"""The predict path in the demo workflow: the unlabelled lineE predicted genome-wide (its true links are kept aside by
the simulation), the outputs a browser reads, reuse of the final model for one more line, and bad input."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_workflow, run_snakemake
from epiflow.codehash import library_digest
from epiflow.metrics import aupr
from epiflow.predict_outputs import PREDICTION_COLUMNS, read_interact, read_predictions

pytestmark = pytest.mark.slow
CONTRACT = ["chrom", "start", "end", "name", "TargetGene", "TargetGeneTSS", "CellType", "distance", "score", "prob"]


def predict_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config/config.yaml").read_text())["predict"]


def outputs(workdir: Path, line: str, model: str) -> Path:
    return workdir / "results/predict" / line / model


DEPLOYED = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())["predict"][
    "models"
][0]


def test_demo_predicts_its_unlabelled_line(demo_run):
    cfg = predict_config(demo_run)
    assert cfg["lines"], "the demo predicts at least one line"
    for line in cfg["lines"]:
        for model in cfg["models"]:
            table = read_predictions(outputs(demo_run, line, model) / "predictions.tsv.gz")
            assert list(table.columns) == PREDICTION_COLUMNS and set(CONTRACT) <= set(table.columns)
            assert (table.CellType == line).all() and table.prob.between(0, 1).all()
            assert table.distance.between(cfg["candidates"]["min_distance"], cfg["candidates"]["max_distance"]).all()
            assert 0 < table.predicted.sum() < len(table)
            assert (table.score_sd >= 0).all() and table.score_sd.max() > 0


def test_unlabelled_line_beats_distance_on_its_hidden_truth(demo_run):
    """lineE's loops are in no sheet; the simulation's truth scores the predictions: a candidate is a true link when
    its element overlaps a linked enhancer of its gene."""
    truth = pd.read_csv(demo_run / "resources/demo/lineE/truth.tsv.gz", sep="\t", dtype={"chrom": str})
    table = read_predictions(outputs(demo_run, "lineE", DEPLOYED) / "predictions.tsv.gz").reset_index(drop=True)
    links = truth[truth.label == 1]
    merged = table.reset_index().merge(links, left_on=["chrom", "TargetGene"], right_on=["chrom", "gene"])
    hit = (merged.start < merged.enhancer_end) & (merged.end > merged.enhancer_start)
    y = np.zeros(len(table), int)
    y[merged.loc[hit, "index"].unique()] = 1
    assert y.sum() > 0.5 * len(links), "most true links are among the candidates"
    model, distance = aupr(y, table.score.to_numpy()), aupr(y, 1.0 / (1.0 + table.distance.to_numpy()))
    print(f"lineE AUPR {DEPLOYED} {model:.3f} vs distance {distance:.3f} (positive rate {y.mean():.3f}, n {len(y)})")
    assert model > distance + 0.1 and model > 2 * y.mean()


def test_browser_files_hold_the_calls(demo_run):
    for line in predict_config(demo_run)["lines"]:
        folder = outputs(demo_run, line, DEPLOYED)
        calls = read_predictions(folder / "predictions.threshold.tsv.gz")
        assert calls.predicted.all() and len(calls) == read_predictions(folder / "predictions.tsv.gz").predicted.sum()
        bedpe = pd.read_csv(folder / "predictions.bedpe.gz", sep="\t", header=None, dtype={0: str, 3: str})
        assert sorted(zip(bedpe[0], bedpe[1], bedpe[2], bedpe[4], strict=True)) == sorted(
            zip(calls.chrom, calls.start, calls.end, calls.TargetGeneTSS, strict=True)
        )
        back = read_interact(folder / "interact.bb")
        assert sorted(zip(back.sourceStart, back.targetName, strict=True)) == sorted(
            zip(calls.start, calls.TargetGene, strict=True)
        )
        genes = pd.read_csv(folder / "genes.tsv", sep="\t")
        assert genes.n_predicted.sum() == len(calls)
        shift = yaml.safe_load((folder / "shift.json").read_text())
        assert set(shift["validation_lines"]) == set(shift["training_lines"])
        assert np.isfinite(shift["distance"]["domain_probe_accuracy"])


def test_final_model_metadata_and_no_self_training(demo_run):
    finals = sorted((demo_run / "results/final").glob(f"*/{DEPLOYED}/meta.json"))
    assert finals
    for meta_path in finals:
        meta = yaml.safe_load(meta_path.read_text())
        assert meta_path.parent.parent.name == "+".join(meta["training_lines"])
        assert meta["feature_columns"] and meta["config_digest"] and meta["versions"]["scikit-learn"]
        assert meta["library_digest"] == library_digest(demo_run / "scripts/predict_fit.py")
    for line in predict_config(demo_run)["lines"]:
        calibration = yaml.safe_load((outputs(demo_run, line, DEPLOYED) / "calibration.json").read_text())
        assert line not in calibration["training_lines"]
        provenance = yaml.safe_load((outputs(demo_run, line, DEPLOYED) / "provenance.json").read_text())
        for key, value in predict_config(demo_run)["candidates"].items():
            assert provenance["candidates"][key] == value, key
        assert provenance["candidates"]["element_width"] is None  # the demo's elements as called


def planned_jobs(plan: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, {field: value}) of every job a dry run (`-n`) prints: its `input:`, `output:`, `wildcards:` lines."""
    jobs = []
    for line in plan.splitlines():
        rule = re.match(r"^(?:local)?rule (\w+):$", line)
        field = re.match(r"^    (\w+): (.*)$", line)
        if rule:
            jobs.append((rule.group(1), {}))
        elif field and jobs:
            jobs[-1][1][field.group(1)] = field.group(2)
    return jobs


def job_wildcards(fields: dict[str, str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in fields.get("wildcards", "").split(", ") if "=" in item)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["lineA"], {"lineA": "lineB+lineC+lineD"}),
        (["lineA", "lineE"], {"lineA": "lineB+lineC+lineD", "lineE": "lineA+lineB+lineC+lineD"}),
    ],
)
def test_labelled_predicted_line_is_left_out_of_its_final_model(tmp_path, lines, expected):
    """On the job plan of a fresh copy: a predicted labelled line's scores, outputs and shift read only a final
    model fitted without it (and without its pairs), while an unlabelled line's final model uses every labelled
    line; one final model per distinct training set is planned."""
    workdir = copy_workflow(tmp_path / "wf")
    overlay = {"predict": {"lines": lines}}
    if "lineE" not in lines:
        overlay["crispr"] = None  # the demo's screen is of lineE, which then has no predictions
    (workdir / "lines.yaml").write_text(yaml.safe_dump(overlay))
    proc = run_snakemake(workdir, "-n", "--configfile", "lines.yaml", timeout=600)
    jobs = planned_jobs(proc.stdout)
    models = predict_config(workdir)["models"]
    fits = [(job_wildcards(f), f) for rule, f in jobs if rule == "predict_fit"]
    assert sorted((w["train_key"], w["model"]) for w, _ in fits) == sorted(
        {(key, model) for key in expected.values() for model in models}
    ), "one final model per distinct training set and deployed model"
    for wildcards, fields in fits:
        used = set(re.findall(r"results/pairs/([^/]+)\.tsv\.gz", fields["input"]))
        assert used == set(wildcards["train_key"].split("+")), fields["input"]
    for line, key in expected.items():
        assert line not in key.split("+")
        seen = set()
        for rule, fields in jobs:
            if rule not in ("predict_score", "predict_outputs", "predict_shift"):
                continue
            if job_wildcards(fields).get("line") != line:
                continue
            seen.add(rule)
            finals = set(re.findall(r"results/final/([^/,\s]+)/", fields["input"]))
            assert finals <= {key}, (rule, line, fields["input"])
            if rule == "predict_score":
                model = job_wildcards(fields)["model"]
                assert f"results/final/{key}/{model}/model.pkl" in fields["input"]
            if rule == "predict_shift":
                pairs = set(re.findall(r"results/pairs/([^/]+)\.tsv\.gz", fields["input"]))
                assert pairs == set(key.split("+")), fields["input"]
        assert seen == {"predict_score", "predict_outputs", "predict_shift"}, (line, seen)
    finals = set(re.findall(r"results/final/([^/,\s]+)/", proc.stdout))
    assert finals == set(expected.values()), finals


@pytest.fixture
def run_copy(demo_run, tmp_path) -> Path:
    """A private copy of the finished demo run (mtimes kept, so nothing reruns unless an input changes)."""
    return Path(shutil.copytree(demo_run, tmp_path / "wf", symlinks=True))


def add_line_like(workdir: Path, new: str, like: str = "lineE") -> str:
    """Append tracks-sheet rows for `new` that reuse `like`'s files; returns a config overlay predicting both."""
    sheet = workdir / "config/demo/tracks.tsv"
    rows = [r for r in sheet.read_text().splitlines() if r.startswith(like + "\t")]
    with sheet.open("a") as handle:
        handle.writelines(new + r[len(like) :] + "\n" for r in rows)
    overlay = workdir / "config/more.yaml"
    cfg = predict_config(workdir)
    overlay.write_text(yaml.safe_dump({"predict": {"lines": [*cfg["lines"], new]}}))
    return str(overlay.relative_to(workdir))


def test_one_more_line_reuses_the_final_model(run_copy):
    overlay = add_line_like(run_copy, "lineF")
    proc = run_snakemake(
        run_copy, "-n", "--configfile", overlay, "--", f"results/predict/lineF/{DEPLOYED}/predictions.tsv.gz"
    )
    plan = proc.stdout + proc.stderr
    assert "predict_candidates" in plan and "predict_score" in plan
    assert "predict_fit" not in plan, "the final model of all labelled lines is reused, not refitted"
    assert "train_heldout" not in plan and "features_compute" not in plan


def test_elements_re_sized_around_their_summits(run_copy):
    """predict.candidates.element_width with element_resize fixed: the rule reruns (its params changed) and an
    element made of one isolated peak is exactly the window around that peak's narrowPeak summit."""
    from epiflow.io import read_peaks

    candidates = run_copy / "results/predict/lineE/candidates.tsv.gz"
    before = pd.read_csv(candidates, sep="\t")
    (run_copy / "narrow.yaml").write_text(
        yaml.safe_dump({"predict": {"candidates": {"element_width": 200, "element_resize": "fixed"}}})
    )
    run_snakemake(run_copy, "--configfile", "narrow.yaml", "--", str(candidates.relative_to(run_copy)))
    elements = pd.read_csv(candidates, sep="\t").drop_duplicates(["chrom", "enhancer_start"])
    peaks = read_peaks(run_copy / "resources/demo/lineE/H3K27ac.narrowPeak.gz", "narrowpeak", summits=True)
    peaks = peaks.sort_values(["chrom", "summit"])
    gap = peaks.groupby("chrom").summit.diff()
    isolated = peaks[(gap.fillna(1e9) > 200) & (gap.groupby(peaks.chrom).shift(-1).fillna(1e9) > 200)]
    assert (isolated.summit != (isolated.start + isolated.end) // 2).mean() > 0.5  # summits are not midpoints
    checked = 0
    for chrom, group in elements.groupby("chrom"):
        summits = np.sort(peaks.summit[peaks.chrom == chrom].to_numpy())
        lone = np.sort(isolated.summit[isolated.chrom == chrom].to_numpy())
        start, end = group.enhancer_start.to_numpy(), group.enhancer_end.to_numpy()
        n_inside = np.searchsorted(summits, end, "left") - np.searchsorted(summits, start, "left")
        assert (n_inside >= 1).all() and (n_inside[end - start > 200] >= 2).all()  # wider only where windows merged
        first_lone = np.searchsorted(lone, start, "left")
        single = (n_inside == 1) & (first_lone < len(lone))
        summit = lone[np.minimum(first_lone, len(lone) - 1)]
        single &= summit < end
        assert (start[single] == summit[single] - 100).all() and (end[single] == summit[single] + 100).all()
        checked += int(single.sum())
    assert checked > 20
    assert (before.enhancer_end - before.enhancer_start).gt(200).any()  # called peaks wider than the windows


def failed(workdir: Path, *args: str) -> str:
    proc = run_snakemake(workdir, *args, check=False, timeout=600)
    assert proc.returncode != 0, proc.stdout[-2000:]
    logs = [p.read_text(errors="replace") for p in sorted((workdir / "logs").rglob("*.log"))]
    return "\n".join([proc.stdout, proc.stderr, *logs])


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ({"predict": {"lines": ["lineZ"]}}, r"predict.lines: cell line 'lineZ' has no tracks"),
        ({"predict": {"models": ["nomodel"]}}, r"predict.models: unknown model 'nomodel'"),
        ({"predict": {"models": ["propensity"]}}, r"predict.models: propensity .* cannot be deployed"),
        ({"predict": {"train": ["lineA", "lineQ"]}}, r"predict.train: line\(s\) \['lineQ'\] have no row"),
    ],
)
def test_bad_predict_config_stops_before_any_job(tmp_path, overlay, expected):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "bad.yaml").write_text(yaml.safe_dump(overlay))
    text = failed(workdir, "-n", "--configfile", "bad.yaml")
    assert pd.Series(text.splitlines()).str.contains(expected).any(), text[-3000:]


@pytest.mark.parametrize("asked", ["predict.lines", "by path"])
def test_predicted_line_missing_a_mark(tmp_path, asked):
    """Stops before any job, whether the line is in predict.lines or only asked for by its output path."""
    workdir = copy_workflow(tmp_path / "wf")
    sheet = workdir / "config/demo/tracks.tsv"
    sheet.write_text("\n".join(r for r in sheet.read_text().splitlines() if not r.startswith("lineE\tCTCF")) + "\n")
    args, key = ["-n"], "predict.lines"
    if asked == "by path":  # lineE out of predict.lines (and its screen), its predictions asked for by path
        (workdir / "config/no_lines.yaml").write_text("predict: {lines: []}\ncrispr: null\n")
        args = ["-n", "--configfile", "config/config.yaml", "config/no_lines.yaml", "--"]
        args, key = [*args, f"results/predict/lineE/{DEPLOYED}/predictions.tsv.gz"], "tracks"
    text = failed(workdir, *args)
    marks = yaml.safe_load((workdir / "config/config.yaml").read_text())["marks"]
    assert (
        f"{key}: lineE: mark(s) ['CTCF'] missing in config/demo/tracks.tsv (the final models need every "
        f"mark of `marks`: {marks})"
    ) in text, text[-3000:]
    assert "Job stats" not in text, "stopped before any job is planned"


def test_empty_peaks_of_a_predicted_line(run_copy):
    peaks = run_copy / "resources/demo/lineE/H3K27ac.narrowPeak.gz"
    peaks.write_bytes(b"")
    text = failed(run_copy, "results/predict/lineE/candidates.tsv.gz")
    assert "H3K27ac.narrowPeak.gz" in text and "expected at least one data line" in text
    assert not (run_copy / "results/predict/lineE/candidates.tsv.gz").exists()


def test_track_chromosome_names_unknown_to_the_reference(run_copy):
    peaks = run_copy / "resources/demo/lineE/H3K27ac.narrowPeak.gz"
    text = gzip.decompress(peaks.read_bytes()).decode()
    peaks.write_bytes(gzip.compress("".join(f"X{line}\n" for line in text.splitlines()).encode()))
    out = failed(run_copy, "results/predict/lineE/candidates.tsv.gz")
    assert "H3K27ac.narrowPeak.gz line 1" in out and "chromosome" in out
    assert not (run_copy / "results/predict/lineE/candidates.tsv.gz").exists()


def test_annotation_chromosome_names_differ_from_the_reference(run_copy):
    """predict.candidates.annotation named '1', '2' against the demo's chr1.. reference with chrom_map null: the
    dry run passes (nothing reads the annotation before the job); predict_candidates stops naming the file, its line
    and chrom_map, and leaves no candidates."""
    annotation = run_copy / "config/genes_nochr.bed"
    annotation.write_text("1\t100000\t100001\tgeneA\t0\t+\n2\t200000\t200001\tgeneB\t0\t-\n")
    overlay = write_yaml(
        run_copy,
        "nochr.yaml",
        {"predict": {"candidates": {"annotation": "config/genes_nochr.bed"}}, "reference": {"chrom_map": None}},
    )
    out = failed(run_copy, "--configfile", overlay, "--", "results/predict/lineE/candidates.tsv.gz")
    assert (
        "config/genes_nochr.bed line 1: chromosome '1' looks like a different naming convention than the reference "
        "('chr1')"
    ) in out, out[-3000:]
    assert "chrom_map: auto" in out
    assert not (run_copy / "results/predict/lineE/candidates.tsv.gz").exists()


CRISPR_SUMMARY = [
    "predictor",
    "n",
    "n_pos",
    "matched",
    "aupr",
    "aupr_lo",
    "aupr_hi",
    "precision_at_recall70",
    "precision_at_recall70_lo",
    "precision_at_recall70_hi",
]


def test_demo_crispri_benchmark_finds_the_planted_mechanism(demo_run):
    """The in-silico screen of lineE (effects from the planted mechanism): the deployed model beats the best
    baseline with the paired interval above 0, and every pair is accounted for."""
    summary = pd.read_csv(demo_run / "results/crispr/lineE_insilico/summary.tsv", sep="\t")
    assert list(summary.columns[: len(CRISPR_SUMMARY)]) == CRISPR_SUMMARY
    rows = summary.set_index("predictor")
    assert {"baseline_distance", "baseline_nearest_tss", DEPLOYED} <= set(rows.index)
    assert (rows.aupr_lo <= rows.aupr).all() and (rows.aupr <= rows.aupr_hi).all()
    assert rows.loc[DEPLOYED, "delta_aupr_lo"] > 0, rows.loc[DEPLOYED]
    assert 0 < rows.loc[DEPLOYED, "matched"] <= rows.loc[DEPLOYED, "n"]
    assert (demo_run / "results/crispr/lineE_insilico/pr_curves.png").read_bytes()[:4] == b"\x89PNG"
    html = (demo_run / "results/report/predict.html").read_text()
    assert "Functional validation (CRISPRi)" in html and "lineE_insilico" in html


def write_yaml(workdir: Path, name: str, content: dict) -> str:
    (workdir / name).write_text(yaml.safe_dump(content))
    return name


def test_screen_of_a_line_without_predictions(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    sheet = workdir / "config/demo/crispr.tsv"
    sheet.write_text(sheet.read_text().replace("\tlineE\t", "\tlineA\t"))
    text = failed(workdir, "-n")
    assert (
        "config/demo/crispr.tsv line 2: screen 'lineE_insilico' of cell line 'lineA', which has no predictions" in text
    )


def test_screen_build_without_a_chain(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    sheet = workdir / "config/demo/crispr.tsv"
    sheet.write_text(sheet.read_text().replace("\tsim\n", "\thg38\n"))
    demo = yaml.safe_load((workdir / "config/config.yaml").read_text())
    own = {key: demo[key] for key in ("pairs", "tracks", "tads", "marks", "protocol", "report", "predict", "crispr")}
    own["reference"] = {**demo["reference"], "build": "hg19"}  # a build of its own: the demo keys must be set
    text = failed(workdir, "-n", "--configfile", write_yaml(workdir, "hg19.yaml", own))
    assert "liftover.hg38ToHg19: not set (needed to lift hg38 to hg19)" in text


@pytest.mark.parametrize("content", ["plain", "gzip under a plain name", "binary"])
def test_external_predictor_without_its_score_column(tmp_path, content):
    """Stops before any job; the header is read as gzip or plain by content, and unreadable bytes are named."""
    workdir = copy_workflow(tmp_path / "wf")
    text = b"chr\tstart\tend\tTargetGene\tABC.Score\nchr1\t10\t20\tG\t0.5\n"
    data = {"plain": text, "gzip under a plain name": gzip.compress(text), "binary": b"\xff\xfe\x00\x81" * 8}
    (workdir / "abc.tsv").write_bytes(data[content])
    spec = {"name": "ABC", "cell_line": "lineE", "source": "abc.tsv", "build": "sim", "score_column": "powerlaw.Score"}
    overlay = write_yaml(workdir, "abc.yaml", {"crispr_predictors": [spec]})
    out = failed(workdir, "-n", "--configfile", overlay)
    expected = "cannot read the header" if content == "binary" else "no column 'powerlaw.Score'"
    assert f"crispr_predictors[0] (ABC): abc.tsv line 1: {expected}" in out, out[-2000:]


def test_also_build_needs_its_chain(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    overlay = write_yaml(workdir, "hg38.yaml", {"predict": {"also_build": "hg38"}})
    text = failed(workdir, "-n", "--configfile", overlay)
    assert "liftover.simToHg38: not set" in text
