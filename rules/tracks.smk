rule tracks_bigwig:
    input:
        source=lambda wc: TRACK_SOURCES[(wc.cell_line, wc.mark)],
        chrom_sizes="results/reference/chrom_sizes.tsv",
    output:
        "results/tracks/{cell_line}/{mark}.bw",
    log:
        "logs/tracks/{cell_line}/{mark}.log",
    benchmark:
        "logs/benchmarks/tracks/{cell_line}/{mark}.tsv"
    wildcard_constraints:
        cell_line=one_of(TRACK_LINES),
    conda:
        "../envs/tracks.yaml"
    params:
        format=lambda wc: track_format(wc.cell_line, wc.mark),
        chrom_map=config["reference"]["chrom_map"],
        library=library("tracks_bigwig.py"),
    script:
        "../scripts/tracks_bigwig.py"
