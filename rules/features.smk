rule features_compute:
    input:
        pairs="results/pairs/{cell_line}.tsv.gz",
        tracks=expand("results/tracks/{{cell_line}}/{mark}.bw", mark=MARKS),
        chrom_sizes="results/reference/chrom_sizes.tsv",
        fasta="results/reference/genome.fa.gz" if USE_SEQUENCE else [],
    output:
        "results/features/{cell_line}.npz",
    log:
        "logs/features/{cell_line}.log",
    benchmark:
        "logs/benchmarks/features/{cell_line}.tsv"
    conda:
        "../envs/features.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        marks=MARKS,
        features=config["features"],
        library=library("features_compute.py"),
    script:
        "../scripts/features_compute.py"
