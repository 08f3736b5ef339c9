rule train_heldout:
    input:
        unpack(train_inputs),
    output:
        scores="results/scores/{heldout}/{model}.tsv.gz",
        info="results/models/{heldout}/{model}.json",
        diagnostics="results/diagnostics/{heldout}/{model}.json",
    log:
        "logs/train/{heldout}/{model}.log",
    benchmark:
        "logs/benchmarks/train/{heldout}/{model}.tsv"
    conda:
        "../envs/train-cuda.yaml" if config["train"]["cuda_env"] else "../envs/train.yaml"
    threads: 1
    resources:
        gpu=lambda wc: config["train"]["gpu"] if model_uses_gpu(wc.model) else 0,
        mem_mb=lambda wc, attempt: 4000 * attempt,
    params:
        heldout_lines=lambda wc: [wc.heldout] + training_lines_of(wc.heldout),
        tad_lines=lambda wc: [c for c in training_lines_of(wc.heldout) if c in TAD_SOURCES],
        tad_formats=lambda wc: [
            TADS.set_index("cell_line").at[c, "format"] for c in training_lines_of(wc.heldout) if c in TAD_SOURCES
        ],
        chrom_folds=PROTOCOL["chrom_folds"],
        validation=PROTOCOL.get("validation", "cell_line"),
        validation_folds=PROTOCOL.get("validation_folds", 3),
        chrom_map=config["reference"]["chrom_map"],
        model_params=lambda wc: config["model_params"].get(wc.model, {}),
        seed=config["train"]["seed"],
        spurious_marks=config["report"]["spurious_marks"],
        checkpoints=lambda wc: f"results/checkpoints/{wc.heldout}/{wc.model}",
        library=library("train_heldout.py"),
    script:
        "../scripts/train_heldout.py"
