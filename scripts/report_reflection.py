"""Entry point of rule report_reflection: the self-contained HTML reflection report."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402
from epiflow.report import build_report  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
keys = [(h, m) for h in sm.params.heldout for m in sm.params.models]
build_report(
    sm.input.summary,
    dict(zip(keys, sm.input.predictions, strict=False)),
    dict(zip(keys, sm.input.calibration, strict=False)),
    sm.input.template,
    sm.output[0],
    sm.params.report,
)
