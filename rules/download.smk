localrules:
    download_source,


rule download_source:
    output:
        "resources/cache/{key}/{name}",
    log:
        "logs/download/{key}/{name}.log",
    benchmark:
        "logs/benchmarks/download/{key}/{name}.tsv"
    retries: 2
    conda:
        "../envs/reference.yaml"
    params:
        entry=lambda wc, output: DOWNLOADS[output[0]],
        mirror=config["mirror"],
    script:
        "../scripts/download_source.py"
