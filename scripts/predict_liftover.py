"""Entry point of rule predict_liftover: the predictions, calls and BEDPE lifted to predict.also_build."""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821
from epiflow.liftover import lift_predictions, load_chain  # noqa: E402
from epiflow.predict_outputs import read_predictions, write_bedpe, write_table  # noqa: E402

sm = snakemake  # noqa: F821
lifted, counts = lift_predictions(read_predictions(sm.input.predictions), load_chain(sm.input.chain))
write_table(lifted, sm.output.predictions)
calls = lifted[lifted.predicted].reset_index(drop=True)
write_table(calls, sm.output.calls)
write_bedpe(calls, sm.output.bedpe)
with open(sm.output.counts, "w") as handle:
    json.dump(counts | {"build": sm.wildcards.build}, handle, indent=1)
