# CRISPRi benchmarks (EPCrisprBenchmark format, config `crispr` sheet loaded by common.smk as CRISPR): each screen's
# pairs scored by baselines, epiflow's models (crispr_prediction_files) and external predictors, in the reference build.


rule crispr_benchmark:
    input:
        unpack(crispr_inputs),
    output:
        pairs="results/crispr/{name}/pairs.tsv.gz",
        summary="results/crispr/{name}/summary.tsv",
        by_distance="results/crispr/{name}/by_distance.tsv",
        pr_curves="results/crispr/{name}/pr_curves.png",
        by_distance_png="results/crispr/{name}/by_distance.png",
        stats="results/crispr/{name}/stats.json",
    log:
        "logs/crispr/{name}.log",
    benchmark:
        "logs/benchmarks/crispr/{name}.tsv"
    wildcard_constraints:
        name="[A-Za-z0-9_.+-]+",
    conda:
        "../envs/crispr.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        screen=lambda wc: {k: crispr_row(wc.name)[k] for k in ("name", "cell_line", "build")},
        reference_build=lambda wc: crispr_reference_build(),
        models=lambda wc: list(crispr_prediction_files(wc.name)),
        external=lambda wc: [{k: v for k, v in p.items() if k != "source"} for p in crispr_external(wc.name)],
        chains=lambda wc: crispr_chains(wc.name),
        options=CRISPR_OPTIONS,
        chrom_map=config["reference"]["chrom_map"],
        library=library("crispr_benchmark.py"),
    script:
        "../scripts/crispr_benchmark.py"
