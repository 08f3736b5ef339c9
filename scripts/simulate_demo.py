"""Entry point of rule simulate_demo: write the demo's genome, annotation, tracks, loops and TADs, and for its
unlabelled lines their hidden truth and in-silico CRISPRi screen."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.simulate import simulate_demo  # noqa: E402

simulate_demo(snakemake.params.simulate, Path(snakemake.params.simulate["outdir"]))  # noqa: F821
