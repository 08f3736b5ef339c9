"""Entry point of rule predict_fit: the final model of one model on all chromosomes of its training lines."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from epiflow import runlog  # noqa: E402

runlog.start(snakemake.log[0])  # noqa: F821

from epiflow.gpu import device_slot, limit_threads  # noqa: E402
from epiflow.io_regions import read_tads_by_line  # noqa: E402
from epiflow.predict import fit_final, save_final  # noqa: E402
from epiflow.train import add_topology, load_cell_data  # noqa: E402

sm = snakemake  # noqa: F821
limit_threads(sm.threads)
lines = sm.params.lines
data = {c: load_cell_data(p, f, c) for c, p, f in zip(lines, sm.input.pairs, sm.input.features, strict=True)}
tads = read_tads_by_line(sm.params.tad_lines, sm.input.tads, sm.params.chrom_map)
data = add_topology(data, tads, heldout=None)  # leave-self-out for every training line's rows
with device_slot(".snakemake/gpu-slots", n_devices=None if sm.resources.gpu else 0) as device:
    params, settings = sm.params.model_params, sm.params.settings
    final = fit_final(data, lines, sm.wildcards.model, params, sm.params.seed, device, settings)
final.meta["tad_lines"] = sm.params.tad_lines
final.meta["library_digest"] = sm.params.library  # the code that fitted it (epiflow.codehash)
save_final(final, sm.output.model, sm.output.validation, sm.output.meta)
