"""Entry point of rule report_reflection: the self-contained HTML reflection report, its figures and tables."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.report import ReportInputs, build_report  # noqa: E402

sm = snakemake  # noqa: F821
keys = [(h, m) for h in sm.params.heldout for m in sm.params.models]
inputs = ReportInputs(
    summary=sm.input.summary,
    predictions=dict(zip(keys, sm.input.predictions, strict=True)),
    calibration=dict(zip(keys, sm.input.calibration, strict=True)),
    pairs=dict(zip(sm.params.cell_lines, sm.input.pairs, strict=True)),
    features=dict(zip(sm.params.cell_lines, sm.input.features, strict=True)),
    train_lines=sm.params.train_lines,
    chrom_folds=sm.params.chrom_folds,
    diagnostics=dict(zip(keys, sm.input.diagnostics, strict=True)),
    anchors=sm.params.anchors,
)
options = dict(sm.params.report) | {"ece_bins": sm.params.ece_bins}
build_report(inputs, sm.input.template, sm.output[0], options, sm.output.figures, sm.output.tables)
