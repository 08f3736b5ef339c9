rule pairs_extract:
    input:
        unpack(pairs_inputs),
    output:
        "results/pairs/{cell_line}.tsv.gz",
    log:
        "logs/pairs/{cell_line}.log",
    benchmark:
        "logs/benchmarks/pairs/{cell_line}.tsv"
    conda:
        "../envs/pairs.yaml"
    params:
        format=lambda wc: PAIRS.set_index("cell_line").at[wc.cell_line, "format"],
        peak_format=lambda wc: track_format(wc.cell_line, config["pairs_from_loops"]["enhancer_mark"]),
        from_loops=config["pairs_from_loops"],
        chrom_folds=PROTOCOL["chrom_folds"],
        chrom_map=config["reference"]["chrom_map"],
    script:
        "../scripts/pairs_extract.py"
