if FASTA_SOURCE:

    rule reference_fasta:
        input:
            FASTA_SOURCE,
        output:
            fasta="results/reference/genome.fa.gz",
            fai="results/reference/genome.fa.gz.fai",
            gzi="results/reference/genome.fa.gz.gzi",
        log:
            "logs/reference/fasta.log",
        benchmark:
            "logs/benchmarks/reference/fasta.tsv"
        conda:
            "../envs/reference.yaml"
        params:
            library=library("reference_fasta.py"),
        script:
            "../scripts/reference_fasta.py"


rule reference_chrom_sizes:
    input:
        CHROM_SIZES_SOURCE or "results/reference/genome.fa.gz.fai",
    output:
        "results/reference/chrom_sizes.tsv",
    log:
        "logs/reference/chrom_sizes.log",
    benchmark:
        "logs/benchmarks/reference/chrom_sizes.tsv"
    conda:
        "../envs/reference.yaml"
    params:
        chrom_map=config["reference"]["chrom_map"],
        library=library("reference_chrom_sizes.py"),
    script:
        "../scripts/reference_chrom_sizes.py"


rule reference_tss:
    input:
        annotation=ANNOTATION_SOURCE or [],
        chrom_sizes="results/reference/chrom_sizes.tsv",
    output:
        "results/reference/tss.tsv.gz",
    log:
        "logs/reference/tss.log",
    benchmark:
        "logs/benchmarks/reference/tss.tsv"
    conda:
        "../envs/reference.yaml"
    params:
        chrom_map=config["reference"]["chrom_map"],
        library=library("reference_tss.py"),
    script:
        "../scripts/reference_tss.py"
