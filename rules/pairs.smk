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
        format=lambda wc: pair_format(wc.cell_line),
        # only loop (bedpe) lines use these: a changed pairs_from_loops reruns no other line's table
        peak_format=lambda wc: (
            track_format(wc.cell_line, config["pairs_from_loops"]["enhancer_mark"])
            if is_loop_line(wc.cell_line)
            else None
        ),
        from_loops=lambda wc: config["pairs_from_loops"] if is_loop_line(wc.cell_line) else None,
        chrom_folds=PROTOCOL["chrom_folds"],
        chrom_map=config["reference"]["chrom_map"],
        library=library("pairs_extract.py"),
    script:
        "../scripts/pairs_extract.py"
