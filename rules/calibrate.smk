rule calibrate_heldout:
    input:
        scores="results/scores/{heldout}/{model}.tsv.gz",
    output:
        predictions="results/predictions/{heldout}/{model}.tsv.gz",
        calibration="results/calibration/{heldout}/{model}.tsv",
        methods="results/calibration/{heldout}/{model}.methods.tsv",
        reliability="results/calibration/{heldout}/{model}.reliability.tsv",
        metrics="results/metrics/{heldout}/{model}.tsv",
    log:
        "logs/calibrate/{heldout}/{model}.log",
    benchmark:
        "logs/benchmarks/calibrate/{heldout}/{model}.tsv"
    conda:
        "../envs/calibrate.yaml"
    params:
        calibration=config["calibration"],
        heldout=lambda wc: wc.heldout,
        chrom_folds=PROTOCOL["chrom_folds"],
        library=library("calibrate_heldout.py"),
    script:
        "../scripts/calibrate_heldout.py"


rule calibrate_summary:
    input:
        expand("results/metrics/{heldout}/{model}.tsv", heldout=HELDOUT, model=MODELS),
    output:
        "results/metrics/summary.tsv",
    log:
        "logs/calibrate/summary.log",
    benchmark:
        "logs/benchmarks/calibrate/summary.tsv"
    conda:
        "../envs/calibrate.yaml"
    params:
        library=library("calibrate_summary.py"),
    script:
        "../scripts/calibrate_summary.py"
