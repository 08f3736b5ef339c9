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
        # url and sha256; `mirror` (where the bytes come from, not what they are) is read from the config by the
        # script, so turning it on or off reruns no download and nothing after it
        entry=lambda wc, output: DOWNLOADS[output[0]],
    script:
        "../scripts/download_source.py"
