rule report_reflection:
    input:
        summary="results/metrics/summary.tsv",
        predictions=expand("results/predictions/{heldout}/{model}.tsv.gz", heldout=HELDOUT, model=MODELS),
        calibration=expand("results/calibration/{heldout}/{model}.tsv", heldout=HELDOUT, model=MODELS),
        template="resources/report/reflection.html.j2",
    output:
        report(
            "results/report/reflection.html",
            category="Reflection",
            labels={"figure": "reflection report"},
        ),
    log:
        "logs/report/reflection.log",
    benchmark:
        "benchmarks/report/reflection.tsv"
    conda:
        "../envs/report.yaml"
    params:
        heldout=HELDOUT,
        models=MODELS,
        report=config["report"],
    script:
        "../scripts/report_reflection.py"
