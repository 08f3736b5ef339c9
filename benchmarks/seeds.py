"""Is a model's edge on a held-out line more than seed noise? Retrain models under several seeds on a finished run.

Run from the repository root on a finished run directory (e.g. the demo: ``make run`` leaves it in the repository;
or ``snakemake --configfile config/demo_zoo.yaml`` in a copy):

    .venv/bin/python benchmarks/seeds.py --workdir DIR [--configfile config/demo_zoo.yaml OVERLAY ...] --heldout lineD
        --models epinet epinet_irm epinet_swap [--seeds 0 1 2 3 4] [--out seeds.tsv]

Every (model, seed) is trained with the workflow's protocol (epiflow.train.run_heldout on the run's features and the
training lines' TAD prior; model_params from the config) and scored on the held-out line's test rows. The seed moves
weight initialisation, batch order and (for GBM) tie breaking; data and folds stay fixed. Printed: per seed and
model the test AUPR, the mean per-line validation AUPR, the train AUPR and what was chosen on validation (a `grid`
param's setting, the screen's dropped marks); per model mean and standard deviation;
for each model against the first, the paired difference over seeds (mean, sd, t = mean / (sd / sqrt(n))). A
difference is "beyond seed noise" here when every seed agrees in sign and |t| > 3 (written in the last column).
`--traces FILE` also writes, per (model, seed), every validation AUPR the screen or the grid compared (JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rundata import REPO, heldout_data, load_config, score_rows

from epiflow.train import run_heldout

log = logging.getLogger("seeds")


def one_run(data, heldout, train_lines, folds, model, params, seed, validation="cell_line", traces=None) -> dict:
    """One (model, seed): its scores on the held-out line; with `traces` (a list), also appends what the screen and
    the grid scored on validation per fold (every candidate's validation AUPR)."""
    start = time.monotonic()
    scores, info = run_heldout(data, heldout, train_lines, folds, model, params, seed, validation=validation)
    scored = score_rows(scores)
    row = {"model": model, "seed": seed} | {k: scored[k] for k in ("train_aupr", "test_aupr", "val_aupr_per_line")}
    if traces is not None and ("screen" in info or "grid" in info):
        traces.append({"model": model, "seed": seed} | {k: info[k] for k in ("screen", "grid") if k in info})
    return row | {"seconds": round(time.monotonic() - start, 1), "chosen": chosen_on_validation(info)}


def chosen_on_validation(info: dict) -> str:
    """What the fit chose on validation, per fold: a grid's setting and the marks the screen dropped ('' if neither)."""
    parts = [f"fold {g['fold']}: {g['chosen']}" for g in info.get("grid", [])]
    parts += [f"fold {s['fold']}: dropped {s['dropped']}" for s in info.get("screen", [])]
    return "; ".join(parts)


def compare(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per model: mean/sd of test AUPR over seeds; paired difference against `baseline` (same seeds)."""
    wide = runs.pivot(index="seed", columns="model", values="test_aupr")
    rows = []
    for model in wide.columns:
        diff = (wide[model] - wide[baseline]).dropna()
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")
        t = float(diff.mean() / (sd / np.sqrt(len(diff)))) if sd and np.isfinite(sd) and sd > 0 else float("nan")
        same_sign = bool(len(diff) > 1 and (np.all(diff > 0) or np.all(diff < 0)))
        rows.append(
            {
                "model": model,
                "seeds": int(wide[model].notna().sum()),
                "test_aupr_mean": float(wide[model].mean()),
                "test_aupr_sd": float(wide[model].std(ddof=1)),
                f"diff_vs_{baseline}": float(diff.mean()),
                "diff_sd": sd,
                "t": t,
                "beyond_seed_noise": model != baseline and same_sign and np.isfinite(t) and abs(t) > 3,
            }
        )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a finished run (results/pairs, features)")
    ap.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config/config.yaml"], help="later files win")
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="the first is the baseline of the comparison")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--validation", choices=["cell_line", "chromosome"], help="default: the config's protocol")
    ap.add_argument(
        "--features-dir",
        type=Path,
        help="features to train on (default: DIR/results/features; e.g. "
        "DIR/ablation/features-quantile written by benchmarks/ablation.py)",
    )
    ap.add_argument("--out", type=Path, help="also write the per-seed table here (TSV)")
    ap.add_argument("--traces", type=Path, help="write the screen's and grid's validation traces here (JSON)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    config = load_config(args.configfile)
    train_lines, data = heldout_data(args.workdir, config, args.heldout, args.features_dir)
    folds = config["protocol"].get("chrom_folds")
    validation = args.validation or config["protocol"].get("validation", "cell_line")
    model_params = config.get("model_params") or {}
    runs, traces = [], []
    with threadpool_limits(args.threads):
        for seed in args.seeds:
            for model in args.models:
                params = model_params.get(model)
                runs.append(one_run(data, args.heldout, train_lines, folds, model, params, seed, validation, traces))
                log.info("%s", runs[-1])
    runs = pd.DataFrame(runs)
    pd.set_option("display.width", 200)
    print(runs.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(compare(runs, args.models[0]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        runs.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    if args.traces:
        args.traces.write_text(json.dumps(traces, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
