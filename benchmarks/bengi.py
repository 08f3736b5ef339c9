"""Benchmark: the real BENGI study, offline, beside TransEPI on the identical pairs and beside distance alone.

Run from the repository root:

    .venv/bin/python benchmarks/bengi.py [--workdir DIR] [--data ../shared/data] [--cores 2] [--config KEY=VALUE ...]
    .venv/bin/python benchmarks/bengi.py --workdir DIR --no-run      # only score a finished run again

1. Copies the workflow into ``--workdir`` (default: a temporary folder) and runs
   ``snakemake --configfile config/bengi_hg19.yaml --config mirror=DATA`` there: every source comes from the
   mirror by basename, sha256-checked. Wall time and the peak RSS of the largest job are measured.
2. For each held-out cell line and model, reads ``results/predictions/{heldout}/{model}.tsv.gz`` (test rows: the
   held-out line on its fold's chromosomes) and prints AUPR/AUROC
   * on all test pairs,
   * on the pairs that TransEPI also scored (matched by chromosome, enhancer start/end and TSS), beside
     TransEPI's own held-out predictions (``anchors/transepi/*prediction.txt.gz``: strict protocol, trained on
     GM12878 + HeLa, the same five chromosome folds) on those pairs,
   * and beside distance alone (score = -distance, no training) on the same rows;
   then one row per model from ``results/metrics/summary.tsv``: test and train AUPR and their gap, ECE raw and
   calibrated, F1 at the validation-chosen threshold beside the test-oracle F1, estimated and true positive rate.
   Every model the run trained is scored; choose them with ``--config 'models=[distance,gbm,epinet,...]'``.
3. Prints the per-rule peak RSS and run time from Snakemake's benchmark files.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from epiflow.metrics import aupr, auroc, score_ranks  # noqa: E402
from epiflow.report_facts import validation_choice  # noqa: E402

log = logging.getLogger("bengi")
WORKFLOW_PARTS = ["Snakefile", "rules", "scripts", "config", "envs", "profiles", "pyproject.toml", "resources/report"]
CONFIG = "config/bengi_hg19.yaml"
TRANSEPI_GLOB = "anchors/transepi/results_*.HiC-Benchmark.v3.all_strict.prediction.txt.gz"
MATCH_KEYS = ["chrom", "enhancer_start", "enhancer_end", "tss"]


def copy_workflow(dest: Path) -> None:
    """The workflow's files (no results, caches or venv) into dest."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in WORKFLOW_PARTS:
        src, out = REPO / part, dest / part
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, out, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, out)


def run_study(workdir: Path, data: Path, cores: int, extra: list[str]) -> tuple[float, float]:
    """Run the BENGI config offline in workdir; returns (wall seconds, peak RSS MiB of the largest process)."""
    # the config's two local paths (chrom sizes, TransEPI anchor) are relative to a run in the repository
    anchor = f"{{name: TransEPI, heldout: IMR90, source: {next(data.glob(TRANSEPI_GLOB))}, format: transepi}}"
    config = [
        f"mirror={data}",
        f"reference={{chrom_sizes: {data / 'hg19' / 'chrom_sizes.tsv'}}}",
        f"report={{anchors: [{anchor}]}}",
        *extra,
    ]
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", CONFIG, "--config", *config]
    log.info("running in %s: %s", workdir, " ".join(cmd))
    start = time.monotonic()
    with open(workdir / "snakemake.log", "w") as out:
        proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed ({proc.returncode}); see {workdir / 'snakemake.log'}")
    # ru_maxrss of waited-for descendants: the largest single process (KiB on Linux)
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def read_transepi(path: Path) -> pd.DataFrame:
    """TransEPI predictions (`true pred chrom enh_name prom_name`, folds concatenated) keyed like epiflow pairs;
    repeated (enhancer, TSS) rows (several transcripts at one TSS) are averaged."""
    table = pd.read_csv(path, sep="\t", comment="#", header=None, names=["label", "score", "chrom", "enh", "prom"])
    enh = table.enh.str.extract(r"^[^:]+:(\d+)-(\d+)").astype(np.int64)
    prom = table.prom.str.extract(r"^[^:]+:(\d+)-").astype(np.int64)
    keyed = pd.DataFrame(
        {"chrom": table.chrom, "enhancer_start": enh[0], "enhancer_end": enh[1], "tss": prom[0]}
    ).assign(label=table.label, transepi=table.score)
    return keyed.groupby(MATCH_KEYS, as_index=False).agg(label=("label", "max"), transepi=("transepi", "mean"))


def test_predictions(workdir: Path, heldout: str, pred: pd.DataFrame) -> pd.DataFrame:
    """Test rows of one model's prediction table, with the pair coordinates (from results/pairs) needed for
    matching."""
    pred = pred[pred["split"] == "test"] if "split" in pred else pred[pred["cell_line"] == heldout]
    pairs = pd.read_csv(workdir / "results" / "pairs" / f"{heldout}.tsv.gz", sep="\t")
    return pred[["pair_id", "label", "score"]].merge(
        pairs[["pair_id", "distance", *MATCH_KEYS]], on="pair_id", validate="one_to_one"
    )


def score_rows(heldout: str, model: str, pred: pd.DataFrame, transepi: pd.DataFrame | None) -> list[dict]:
    """AUPR/AUROC of the model on all test pairs and, where TransEPI scored the held-out line, on the matched
    pairs beside TransEPI; distance alone (-distance) on the same rows each time."""
    rows = [_metrics(heldout, model, "all test pairs", pred.label, pred.score, None, pred.distance)]
    if transepi is not None:
        both = pred.merge(transepi, on=MATCH_KEYS, suffixes=("", "_transepi"))
        disagree = int((both.label != both.label_transepi).sum())
        if disagree:
            log.warning("%s: %d matched pairs with different labels in TransEPI's file", heldout, disagree)
        subset = f"matched TransEPI ({len(both)}/{len(transepi)})"
        rows.append(_metrics(heldout, model, subset, both.label, both.score, both.transepi, both.distance))
    return rows


def _metrics(heldout, model, subset, y, score, transepi, distance) -> dict:
    y = np.asarray(y)
    row = {"heldout": heldout, "model": model, "pairs": subset, "n": len(y), "n_pos": int(y.sum())}
    row |= {"aupr": aupr(y, score_ranks(score)), "auroc": auroc(y, score_ranks(score))}
    if transepi is not None:
        row |= {"transepi_aupr": aupr(y, score_ranks(transepi)), "transepi_auroc": auroc(y, score_ranks(transepi))}
    closer = score_ranks(-np.asarray(distance))  # distance alone: the nearer pair scores higher
    return row | {"distance_aupr": aupr(y, closer), "distance_auroc": auroc(y, closer)}


def summary_table(summary: pd.DataFrame, by_line: dict | None = None) -> pd.DataFrame:
    """One row per held-out line x model: test and train AUPR and their gap (the seed's overfitting measure),
    calibration (ECE raw and final), F1 at the validation-chosen threshold beside the test-oracle F1, and the
    positive rate estimated without test labels beside the true one. With the prediction tables (heldout -> model ->
    table), also the mean per-line validation AUPR and the model validation chooses (report_facts.validation_choice)."""
    test = summary[summary.split == "test"].set_index(["heldout", "model"])
    train = summary[summary.split == "train"].set_index(["heldout", "model"])
    out = pd.DataFrame({"test_aupr": test.aupr, "train_aupr": train.aupr})
    out["gap"] = out.train_aupr - out.test_aupr
    for column in ["auroc", "ece_raw", "ece", "threshold", "f1", "oracle_f1", "pos_rate", "pos_rate_estimate"]:
        if column in test:
            out[column] = test[column]
    out = out.reset_index()
    if by_line is not None:
        out = validation_choice(out, by_line).rename(columns={"aupr_val_lines": "val_aupr_lines"})
    return out.sort_values(["heldout", "test_aupr"], ascending=[True, False])


def rule_resources(workdir: Path) -> pd.DataFrame:
    """Per stage: jobs, summed and largest run time (s) and largest max_rss (MiB) from the rules' benchmark files
    (logs/benchmarks/<stage>/...)."""
    rows = []
    benchmarks = workdir / "logs" / "benchmarks"
    for path in sorted(benchmarks.glob("**/*.tsv")):
        bench = pd.read_csv(path, sep="\t")
        rows.append({"stage": path.relative_to(benchmarks).parts[0], "s": bench.s.iloc[0]})
        rows[-1]["max_rss"] = pd.to_numeric(bench.max_rss, errors="coerce").iloc[0]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    return frame.groupby("stage").agg(
        jobs=("s", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mib=("max_rss", "max")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="run folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the offline mirror")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--config", nargs="*", default=[], help="extra snakemake --config KEY=VALUE overrides")
    parser.add_argument("--no-run", action="store_true", help="score an already finished run in --workdir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = args.data.resolve()
    with tempfile.TemporaryDirectory(prefix="bengi-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        if not args.no_run:
            workdir.mkdir(parents=True, exist_ok=True)
            copy_workflow(workdir)
            wall, rss = run_study(workdir, data, args.cores, args.config)
            print(f"wall time {wall:.0f} s ({wall / 60:.1f} min) on {args.cores} cores; peak RSS {rss:.0f} MiB")
        report(workdir, data)


def report(workdir: Path, data: Path) -> None:
    """Print the comparison table and per-rule resources of a finished run."""
    anchor_files = {p.name.split("_")[1].split(".")[0]: p for p in sorted(data.glob(TRANSEPI_GLOB))}
    anchors = {heldout: read_transepi(path) for heldout, path in anchor_files.items()}
    rows, by_line = [], {}
    for path in sorted((workdir / "results" / "predictions").glob("*/*.tsv.gz")):
        heldout, model = path.parent.name, path.name.removesuffix(".tsv.gz")
        pred = pd.read_csv(path, sep="\t")
        rows += score_rows(heldout, model, test_predictions(workdir, heldout, pred), anchors.get(heldout))
        by_line.setdefault(heldout, {})[model] = pred[["cell_line", "label", "split", "score"]]
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    summary = workdir / "results" / "metrics" / "summary.tsv"
    if summary.exists():
        print("\nper model, from results/metrics/summary.tsv (test = the held-out line on its folds' chromosomes):")
        table = summary_table(pd.read_csv(summary, sep="\t"), by_line)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for r in table[table.chosen].itertuples():
            print(
                f"validation chooses {r.model} for {r.heldout} (mean per-line validation AUPR {r.val_aupr_lines:.3f})"
            )
    for heldout, path in anchor_files.items():
        raw = pd.read_csv(path, sep="\t", comment="#", header=None, usecols=[0, 1])
        print(f"TransEPI {heldout}, all {len(raw)} rows of {path.name}: AUPR {aupr(raw[0], raw[1]):.3f}")
    print(rule_resources(workdir).to_string(float_format=lambda v: f"{v:.0f}"))


if __name__ == "__main__":
    main()
