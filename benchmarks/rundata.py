"""Shared by the benchmarks that retrain models on a finished run: its config, its TAD lists and its cell lines'
features as the training rule sees them (pairs + features + the training lines' conserved-TAD prior)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from epiflow.metrics import aupr, aupr_per_line, auroc  # noqa: E402
from epiflow.train import load_heldout_data, training_lines  # noqa: E402


def deep_update(base: dict, over: dict) -> dict:
    """`over` laid on `base` key by key (nested dicts merged), as Snakemake layers --configfile over the default."""
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(configfile: Path | list[Path]) -> dict:
    """config/config.yaml with `configfile` (one or several, later ones win) laid over it, as `snakemake
    --configfile A B` does."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for path in [configfile] if isinstance(configfile, str | Path) else configfile:
        if Path(path).resolve() != (REPO / "config/config.yaml").resolve():
            config = deep_update(config, yaml.safe_load(Path(path).read_text()))
    return config


def tad_paths(workdir: Path, config: dict) -> dict[str, Path]:
    """Cell line -> its TAD list in the run: a URL source as downloaded (by basename under resources/cache), a
    local source relative to its sheet inside the run directory."""
    if not config.get("tads"):
        return {}
    sheet_path = workdir / config["tads"]
    sheet = pd.read_csv(sheet_path, sep="\t", comment="#", dtype=str)
    found = {}
    for row in sheet.itertuples():
        if "://" in row.source:
            hits = sorted((workdir / "resources" / "cache").glob(f"*/{Path(row.source).name}"))
            path = hits[0] if hits else None
        else:
            path = (sheet_path.parent / row.source).resolve()
        if path is not None and path.exists():
            found[row.cell_line] = path
    return found


def heldout_data(workdir: Path, config: dict, heldout: str, features_dir: Path | None = None):
    """(training lines, {line: PairData}) for one held-out line, with the topology prior of rule train_heldout."""
    protocol = config["protocol"]
    all_lines = sorted(pd.read_csv(workdir / config["pairs"], sep="\t", comment="#", dtype=str).cell_line.unique())
    train_lines = training_lines(all_lines, heldout, protocol.get("train"))
    features_dir = features_dir or workdir / "results" / "features"
    lines = [heldout, *train_lines]
    pairs = {c: workdir / f"results/pairs/{c}.tsv.gz" for c in lines}
    features = {c: features_dir / f"{c}.npz" for c in lines}
    tads = tad_paths(workdir, config)
    return train_lines, load_heldout_data(
        heldout, train_lines, pairs, features, tads, config["reference"].get("chrom_map")
    )


def score_rows(scores: pd.DataFrame) -> dict:
    """Of run_heldout's score table: the mean per-line validation AUPR (the column a choice may be made on), train
    and test AUPR pooled over folds (as summary.tsv), test AUROC and the train - test gap."""
    parts = {split: scores[scores.split == split] for split in ("train", "val", "test")}
    row = {"val_aupr_per_line": float(np.mean(aupr_per_line(parts["val"])))}
    row |= {f"{s}_aupr": aupr(parts[s].label.to_numpy(), parts[s].score.to_numpy()) for s in ("train", "test")}
    row["test_auroc"] = auroc(parts["test"].label.to_numpy(), parts["test"].score.to_numpy())
    return row | {"gap": row["train_aupr"] - row["test_aupr"]}


def peak_source(workdir: Path, config: dict, line: str, mark: str) -> tuple[Path, str]:
    """(downloaded file, format) of `line`'s `mark` in the run's tracks sheet (a URL source, found by basename under
    resources/cache)."""
    sheet = pd.read_csv(workdir / config["tracks"], sep="\t", comment="#", dtype=str)
    row = sheet[(sheet.cell_line == line) & (sheet["mark"] == mark)].iloc[0]
    return sorted((workdir / "resources" / "cache").glob(f"*/{Path(row.source).name}"))[0], row.format


def candidate_tss(workdir: Path, config: dict, chrom_sizes: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every TSS: the reference's and the annotation's, for the promoter exclusion; one TSS per annotated gene) as
    rule predict_candidates builds them from `predict.candidates.annotation`."""
    from epiflow.candidates import one_tss_per_gene
    from epiflow.io import read_tss

    opts = config["predict"]["candidates"]
    tss = pd.read_csv(workdir / "results/reference/tss.tsv.gz", sep="\t", dtype={"chrom": str, "gene": str})
    annotated = read_tss(
        workdir / opts["annotation"],
        known_chroms=chrom_sizes,
        chrom_map=config["reference"].get("chrom_map"),
        gene_column=opts["gene_column"],
    )
    return pd.concat([tss, annotated], ignore_index=True), one_tss_per_gene(annotated)


def symbol_of_ensembl(bounds: Path) -> dict[str, str]:
    """Ensembl gene id (no version) -> symbol, from ABC's CollapsedGeneBounds BED (name = symbol, column 7 = id)."""
    table = pd.read_csv(bounds, sep="\t", dtype=str)  # header: #chr start end name score strand Ensembl_ID gene_type
    return dict(zip(table.Ensembl_ID, table.name, strict=True))
