# epiflow: enhancer–promoter interaction prediction in a cell line the model never saw, and a reflection on why it
# fails. Data flow: sheets -> reference -> pairs -> tracks -> features -> train -> calibrate -> report.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "resources/report/workflow.rst"


include: "rules/common.smk"
include: "rules/common_predict.smk"
include: "rules/simulate.smk"
include: "rules/download.smk"
include: "rules/reference.smk"
include: "rules/pairs.smk"
include: "rules/tracks.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/calibrate.smk"
include: "rules/predict.smk"
include: "rules/crispr.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),
        predict_targets(),
