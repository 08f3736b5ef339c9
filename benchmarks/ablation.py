"""Ablation from one run: which per-cell normalization and which feature groups help a model on a held-out line.

Run from the repository root on a finished run directory (for the real study: the ``--workdir`` of
``benchmarks/bengi.py``, which holds ``results/pairs``, ``results/tracks``, ``results/reference`` and the downloaded
TAD lists under ``resources/cache``):

    .venv/bin/python benchmarks/ablation.py --workdir DIR [--configfile config/bengi_hg19.yaml] [--model gbm]
        [--normalizations none log1p rank quantile] [--groups ...] [--params JSON ...] [--out ablation.tsv]

For each normalization the feature engine (epiflow.features.compute_features, the config's resolution and profile
bins) recomputes every cell line's features from the run's bigWig tracks; the conserved-TAD prior is added from the
training lines' TAD lists (leave-self-out, as in rule train_heldout). For each feature-group set the model is trained
with the workflow's own protocol (epiflow.train.run_heldout: every chromosome fold, every training line validated on
in turn, test = the held-out line on its fold's chromosomes). Printed per row: test AUPR/AUROC (all folds pooled, as
in summary.tsv), train AUPR and the train - test gap, and the mean per-line validation AUPR — the only column a
choice may be made on (the test columns are reported, never tuned on). Feature files go to DIR/ablation/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import resource
import sys
import time
from pathlib import Path

import pandas as pd
from rundata import REPO, heldout_data, load_config, score_rows

from epiflow.features import compute_configured, save_features
from epiflow.io import read_chrom_sizes, read_pair_table
from epiflow.train import run_heldout

log = logging.getLogger("ablation")
# name -> feature groups excluded (epiflow.models.base.column_groups); every model honours `exclude_columns`
GROUP_SETS = {
    "E/P/W marks": ["distance", "topology"],
    "marks + distance": ["topology"],
    "marks + distance + topology": [],
    "distance + topology": ["marks"],
    "marks + distance + topology - window": ["window"],
}


def build_features(workdir: Path, config: dict, lines: list[str], normalization: str) -> Path:
    """Every line's features under one normalization (cached in DIR/ablation/features-NORM/); returns the folder."""
    out = workdir / "ablation" / f"features-{normalization}"
    out.mkdir(parents=True, exist_ok=True)
    marks = config["marks"]
    sizes = read_chrom_sizes(workdir / "results/reference/chrom_sizes.tsv")
    for line in lines:
        target = out / f"{line}.npz"
        if target.exists():
            continue
        start = time.monotonic()
        pairs = read_pair_table(workdir / f"results/pairs/{line}.tsv.gz")
        tracks = {m: str(workdir / f"results/tracks/{line}/{m}.bw") for m in marks}
        table, profile = compute_configured(pairs, tracks, sizes, config["features"], normalization)
        save_features(target, pairs.pair_id, table, profile, marks)
        log.info("features %s %s: %d pairs in %.1f s", normalization, line, len(pairs), time.monotonic() - start)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a finished run (results/pairs, tracks, reference)")
    ap.add_argument(
        "--configfile", type=Path, nargs="+", default=[REPO / "config/bengi_hg19.yaml"], help="later files win"
    )
    ap.add_argument("--model", default="gbm")
    ap.add_argument("--heldout", nargs="+", help="held-out lines to run (default: the protocol's test lines, or all)")
    ap.add_argument("--normalizations", nargs="+", default=["none", "log1p", "rank", "quantile"])
    ap.add_argument("--groups", nargs="+", default=list(GROUP_SETS), choices=list(GROUP_SETS))
    ap.add_argument(
        "--params",
        nargs="+",
        type=json.loads,
        default=[{}],
        help="JSON objects laid over the config's model_params, one table row each (e.g. capacity settings)",
    )
    ap.add_argument("--out", type=Path, help="also write the table here (TSV)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = load_config(args.configfile)
    lines = sorted(pd.read_csv(args.workdir / config["pairs"], sep="\t", comment="#", dtype=str).cell_line.unique())
    protocol = config["protocol"]
    params = dict((config.get("model_params") or {}).get(args.model) or {})
    rows = []
    for heldout in args.heldout or protocol.get("test") or lines:
        for norm in args.normalizations:
            folder = build_features(args.workdir, config, lines, norm)
            train_lines, data = heldout_data(args.workdir, config, heldout, folder)
            for group, extra in itertools.product(args.groups, args.params):
                start = time.monotonic()
                exclude = GROUP_SETS[group] + list(extra.get("exclude_columns", []))
                run_params = params | extra | {"exclude_columns": exclude}
                scores, _ = run_heldout(
                    data,
                    heldout,
                    train_lines,
                    protocol.get("chrom_folds"),
                    args.model,
                    run_params,
                    config["train"]["seed"],
                )
                row = {"heldout": heldout, "model": args.model, "normalization": norm, "features": group}
                row |= {"params": json.dumps(extra, sort_keys=True)} if args.params != [{}] else {}
                rows.append(row | score_rows(scores) | {"seconds": round(time.monotonic() - start, 1)})
                log.info("%s", rows[-1])
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    if args.out:
        table.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
