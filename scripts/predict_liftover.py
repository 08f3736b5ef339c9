"""Entry point of rule predict_liftover: the predictions, calls and BEDPE lifted to predict.also_build."""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.io_text import read_chrom_sizes  # noqa: E402
from epiflow.liftover import lift_predictions, load_chain  # noqa: E402
from epiflow.predict_outputs import read_predictions, write_bedpe, write_table  # noqa: E402

sm = snakemake  # noqa: F821
# the chain's source side must be the reference build (its chromosome lengths): the other direction lifts wrongly
chain = load_chain(sm.input.chain, from_sizes=read_chrom_sizes(sm.input.chrom_sizes))
lifted, counts = lift_predictions(read_predictions(sm.input.predictions), chain)
write_table(lifted, sm.output.predictions)
calls = lifted[lifted.predicted].reset_index(drop=True)
write_table(calls, sm.output.calls)
write_bedpe(calls, sm.output.bedpe)
with open(sm.output.counts, "w") as handle:
    json.dump(counts | {"build": sm.wildcards.build}, handle, indent=1)
