"""Entry point of rule report_predict: the self-contained HTML report of the predict path and its locus figures."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.predict_report import PredictReportInputs, build_predict_report  # noqa: E402

sm = snakemake  # noqa: F821
keys = [tuple(k) for k in sm.params.line_models]
marks = sm.params.marks
tracks = iter(sm.input.tracks)
per_line = {line: {m: next(tracks) for m in marks} for line in sm.params.lines}  # expand: line-major
names = ("summary", "pr_curves", "by_distance", "screen", "pairs", "training")
files = zip(
    sm.input.crispr_summary,
    sm.input.crispr_pr,
    sm.input.crispr_distance,
    sm.input.screens,
    sm.input.crispr_pairs,
    sm.input.crispr_training,
    strict=True,
)
crispr = [screen | dict(zip(names, paths, strict=True)) for screen, paths in zip(sm.params.screens, files, strict=True)]
inputs = PredictReportInputs(
    predictions=dict(zip(keys, sm.input.predictions, strict=True)),
    genes=dict(zip(keys, sm.input.genes, strict=True)),
    calibration=dict(zip(keys, sm.input.calibration, strict=True)),
    shift=dict(zip(keys, sm.input.shift, strict=True)),
    meta=dict(zip(keys, sm.input.meta, strict=True)),
    pairs=dict(zip(sm.params.labelled, sm.input.pairs, strict=True)),
    tracks=per_line,
    tads=dict(zip(sm.params.tad_lines, sm.input.tads, strict=True)),
    crispr=crispr,
)
options = {"loci": sm.params.loci, "chrom_map": sm.params.chrom_map}
build_predict_report(inputs, sm.input.template, sm.output.html, options, sm.output.loci)
