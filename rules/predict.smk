# The predict path: genome-wide, calibrated enhancer–gene predictions for cell lines without labels or Hi-C.
# candidates -> features (chunked by chromosome) -> final model per (training lines, model) -> scores -> outputs.


rule predict_candidates:
    input:
        peaks=predict_peaks,
        tss="results/reference/tss.tsv.gz",
        annotation=GENE_ANNOTATION or [],
        genes=GENE_LIST or [],
        chrom_sizes="results/reference/chrom_sizes.tsv",
    output:
        "results/predict/{line}/candidates.tsv.gz",
    log:
        "logs/predict/{line}/candidates.log",
    benchmark:
        "logs/benchmarks/predict/{line}/candidates.tsv"
    wildcard_constraints:
        line=one_of(TRACK_LINES),
    conda:
        "../envs/predict.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        peak_format=lambda wc: track_format(wc.line, CANDIDATES["enhancer_mark"]),
        candidates=CANDIDATES,
        chrom_map=config["reference"]["chrom_map"],
        library=library("predict_candidates.py"),
    script:
        "../scripts/predict_candidates.py"


rule predict_features:
    input:
        candidates="results/predict/{line}/candidates.tsv.gz",
        tracks=expand("results/tracks/{{line}}/{mark}.bw", mark=MARKS),
        chrom_sizes="results/reference/chrom_sizes.tsv",
        fasta="results/reference/genome.fa.gz" if USE_SEQUENCE and predict_needs_profiles() else [],
    output:
        directory("results/predict/{line}/features"),
    log:
        "logs/predict/{line}/features.log",
    benchmark:
        "logs/benchmarks/predict/{line}/features.tsv"
    wildcard_constraints:
        line=one_of(TRACK_LINES),
    conda:
        "../envs/predict.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        marks=MARKS,
        features=config["features"],
        profiles=predict_needs_profiles(),
        library=library("predict_features.py"),
    script:
        "../scripts/predict_features.py"


rule predict_fit:
    input:
        unpack(final_inputs),
    output:
        model="results/final/{train_key}/{model}/model.pkl",
        validation="results/final/{train_key}/{model}/validation.tsv.gz",
        meta="results/final/{train_key}/{model}/meta.json",
    log:
        "logs/predict/final/{train_key}/{model}.log",
    benchmark:
        "logs/benchmarks/predict/final/{train_key}/{model}.tsv"
    wildcard_constraints:
        train_key="[^/]+",
        model=one_of(PREDICT_MODELS),
    conda:
        "../envs/train-cuda.yaml" if config["train"]["cuda_env"] else "../envs/train.yaml"
    threads: 1
    resources:
        gpu=lambda wc: config["train"]["gpu"] if model_uses_gpu(wc.model) else 0,
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        lines=lambda wc: wc.train_key.split("+"),
        tad_lines=lambda wc: [c for c in wc.train_key.split("+") if c in TAD_SOURCES],
        chrom_map=config["reference"]["chrom_map"],
        model_params=final_model_params,
        seed=config["train"]["seed"],
        settings=lambda wc: {
            "lines": wc.train_key.split("+"),
            "model": wc.model,
            "params": final_model_params(wc),
            "marks": MARKS,
            "features": config["features"],
            "seed": config["train"]["seed"],
        },
        library=library("predict_fit.py"),
    script:
        "../scripts/predict_fit.py"


rule predict_score:
    input:
        unpack(score_inputs),
    output:
        scores=temp("results/predict/{line}/{model}/scores.tsv.gz"),
        calibration="results/predict/{line}/{model}/calibration.json",
    log:
        "logs/predict/{line}/{model}/score.log",
    benchmark:
        "logs/benchmarks/predict/{line}/{model}/score.tsv"
    wildcard_constraints:
        line=one_of(TRACK_LINES),
        model=one_of(PREDICT_MODELS),
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        tad_lines=lambda wc: [c for c in predict_training_lines(wc.line) if c in TAD_SOURCES],
        chrom_map=config["reference"]["chrom_map"],
        calibration=calibration_settings(config),
        library=library("predict_score.py"),
    script:
        "../scripts/predict_score.py"


rule predict_outputs:
    input:
        candidates="results/predict/{line}/candidates.tsv.gz",
        scores="results/predict/{line}/{model}/scores.tsv.gz",
        calibration="results/predict/{line}/{model}/calibration.json",
        meta=lambda wc: f"{final_dir(wc.line, wc.model)}/meta.json",
        chrom_sizes="results/reference/chrom_sizes.tsv",
    output:
        predictions="results/predict/{line}/{model}/predictions.tsv.gz",
        calls="results/predict/{line}/{model}/predictions.threshold.tsv.gz",
        bedpe="results/predict/{line}/{model}/predictions.bedpe.gz",
        interact="results/predict/{line}/{model}/interact.bb",
        genes="results/predict/{line}/{model}/genes.tsv",
        provenance="results/predict/{line}/{model}/provenance.json",
    log:
        "logs/predict/{line}/{model}/outputs.log",
    benchmark:
        "logs/benchmarks/predict/{line}/{model}/outputs.tsv"
    wildcard_constraints:
        line=one_of(TRACK_LINES),
        model=one_of(PREDICT_MODELS),
    conda:
        "../envs/predict.yaml"
    resources:
        # every candidate pair in memory: 2.0 GB on IMR90's 3.55 million (abc), above a 2000 MB default
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        candidates=CANDIDATES,
        library=library("predict_outputs.py"),
    script:
        "../scripts/predict_outputs.py"


rule predict_shift:
    input:
        pairs=lambda wc: expand("results/pairs/{cell}.tsv.gz", cell=predict_training_lines(wc.line)),
        tracks=lambda wc: expand(
            "results/tracks/{cell}/{mark}.bw", cell=[wc.line, *predict_training_lines(wc.line)], mark=MARKS
        ),
        chrom_sizes="results/reference/chrom_sizes.tsv",
        calibration="results/predict/{line}/{model}/calibration.json",
    output:
        shift="results/predict/{line}/{model}/shift.json",
        table="results/predict/{line}/{model}/shift.tsv",
    log:
        "logs/predict/{line}/{model}/shift.log",
    benchmark:
        "logs/benchmarks/predict/{line}/{model}/shift.tsv"
    wildcard_constraints:
        line=one_of(TRACK_LINES),
        model=one_of(PREDICT_MODELS),
    conda:
        "../envs/predict.yaml"
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        lines=lambda wc: [wc.line, *predict_training_lines(wc.line)],
        marks=MARKS,
        features=config["features"],
        seed=config["train"]["seed"],
        library=library("predict_shift.py"),
    script:
        "../scripts/predict_shift.py"


rule predict_liftover:
    input:
        predictions="results/predict/{line}/{model}/predictions.tsv.gz",
        chain=ALSO_BUILD_CHAIN or [],
        chrom_sizes="results/reference/chrom_sizes.tsv",
    output:
        predictions="results/predict/{line}/{model}/{build}/predictions.tsv.gz",
        calls="results/predict/{line}/{model}/{build}/predictions.threshold.tsv.gz",
        bedpe="results/predict/{line}/{model}/{build}/predictions.bedpe.gz",
        counts="results/predict/{line}/{model}/{build}/liftover.json",
    log:
        "logs/predict/{line}/{model}/{build}/liftover.log",
    benchmark:
        "logs/benchmarks/predict/{line}/{model}/{build}/liftover.tsv"
    wildcard_constraints:
        line=one_of(TRACK_LINES),
        model=one_of(PREDICT_MODELS),
        build="hg19|hg38",
    conda:
        "../envs/predict.yaml"
    resources:
        # every candidate pair in memory, as predict_outputs
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        library=library("predict_liftover.py"),
    script:
        "../scripts/predict_liftover.py"
