"""Entry point of rule crispr_benchmark: score one CRISPRi screen's pairs with baselines, epiflow's models and
external predictors, in the reference build (the screen and external predictions are lifted to it)."""

import json
import logging
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow import crispr, io_crispr  # noqa: E402
from epiflow.errors import InputError  # noqa: E402
from epiflow.io_text import read_chrom_sizes, read_gene_list  # noqa: E402
from epiflow.liftover import load_chain  # noqa: E402

sm = snakemake  # noqa: F821
log = logging.getLogger("crispr_benchmark")
screen, options, reference_build = sm.params.screen, sm.params.options, sm.params.reference_build
# source build -> chain to the reference (its target side checked against the reference's chromosome lengths)
sizes = read_chrom_sizes(sm.input.chrom_sizes)
chains = {build: load_chain(path, to_sizes=sizes) for build, path in sm.params.chains.items()}

chrom_map = sm.params.chrom_map
pairs, stats = io_crispr.read_crispr(
    sm.input.screen, screen["cell_line"], options.get("power_column"), options.get("min_power"), chrom_map
)
stats["lift"] = {}
if screen["build"] != reference_build:
    pairs, stats["lift"]["screen"] = crispr.lift_pairs(pairs, chains[screen["build"]])
    if pairs.empty:
        raise InputError(
            f"{sm.input.screen}: no pair lifted from {screen['build']} to {reference_build} with "
            f"{sm.params.chains[screen['build']]} ({stats['lift']['screen']}; expected the chain of these builds)"
        )
chroms = set(pairs["chrom"])
tss = pd.read_csv(sm.input.tss, sep="\t", usecols=["chrom", "tss", "gene"], dtype={"chrom": str, "gene": str})

predicted = []
for model, path in zip(sm.params.models, sm.input.predictions, strict=True):
    # epiflow's scores are probabilities in [0, 1]: an element without a candidate pair ranks lowest
    spec = crispr.Predictor(model, source=path, score_column="score", aggregate="max", fill_value=0.0)
    predicted.append((spec, io_crispr.read_predictions(path, spec.score_column, chroms, chrom_map)))
for external, path in zip(sm.params.external, sm.input.external, strict=True):
    spec = crispr.Predictor.from_dict({**external, "source": path})
    frame = io_crispr.read_predictions(path, spec.score_column, chroms, chrom_map)
    if external["build"] != reference_build:
        frame, stats["lift"][spec.name] = crispr.lift_pairs(frame, chains[external["build"]])
    predicted.append((spec, frame))

# optional: one gene (symbol or Ensembl id) per line
expressed = pd.Series(read_gene_list(sm.input.expressed), dtype=str) if sm.input.expressed else None
if expressed is not None:
    crispr.check_expressed_genes(expressed, tss, sm.input.expressed)
table, specs = crispr.score_table(pairs, tss, predicted, expressed)
n_boot, seed = int(options.get("bootstrap", 1000)), int(options.get("seed", 0))
counts = crispr.bootstrap_counts(len(table), n_boot, seed)
summary = crispr.summary_table(table, specs, counts=counts)
by_distance = crispr.by_distance_table(table, specs, counts=counts)

table.to_csv(sm.output.pairs, sep="\t", index=False, float_format="%.6g")
summary.to_csv(sm.output.summary, sep="\t", index=False, float_format="%.6g")
by_distance.to_csv(sm.output.by_distance, sep="\t", index=False, float_format="%.6g")
title = f"{screen['name']} ({screen['cell_line']}, {len(table)} pairs, {int(table['label'].sum())} regulated)"
with open(sm.output.pr_curves, "wb") as handle:
    handle.write(crispr.plot_pr_curves(table, specs, title))
with open(sm.output.by_distance_png, "wb") as handle:
    handle.write(crispr.plot_by_distance(by_distance, title))
stats.update(
    screen=dict(screen),
    reference_build=reference_build,
    bootstrap=n_boot,
    seed=seed,
    predictors=[{**vars(spec), "matched": int(table[f"matched.{spec.name}"].sum())} for spec in specs],
)
with open(sm.output.stats, "w") as handle:
    json.dump(stats, handle, indent=2, default=lambda v: v.item() if isinstance(v, np.generic) else str(v))
log.info("summary:\n%s", summary.to_string(index=False))
