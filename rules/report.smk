# External predictions scored on identical pairs (config report.anchors); a URL source is fetched into the cache.
REPORT_ANCHORS = [a | {"source": source_path(a["source"])} for a in config["report"].get("anchors") or []]


rule report_reflection:
    input:
        summary="results/metrics/summary.tsv",
        predictions=expand("results/predictions/{heldout}/{model}.tsv.gz", heldout=HELDOUT, model=MODELS),
        calibration=expand("results/calibration/{heldout}/{model}.tsv", heldout=HELDOUT, model=MODELS),
        # the pair tables and features of every line: the leakage audit and the shift diagnostics read them
        pairs=expand("results/pairs/{cell_line}.tsv.gz", cell_line=CELL_LINES),
        features=expand("results/features/{cell_line}.npz", cell_line=CELL_LINES),
        # model diagnostics (domain probe, geometry, sharpness, attribution) written by train_heldout
        diagnostics=expand("results/diagnostics/{heldout}/{model}.json", heldout=HELDOUT, model=MODELS),
        anchors=[a["source"] for a in REPORT_ANCHORS],
        template="resources/report/reflection.html.j2",
        messages=expand("resources/report/messages/{language}.yaml", language=["en", config["report"]["language"]]),
    output:
        report(
            "results/report/reflection.html",
            caption="../resources/report/caption.rst",
            category="Reflection",
            labels={"report": "reflection (self-contained HTML)"},
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{kind}/{line}.png"],
            caption="../resources/report/figure.rst",
            category="Figures",
            subcategory="{kind}",
            labels={"figure": "{kind}", "held-out line": "{line}"},
        ),
        tables=report(
            directory("results/report/tables"),
            patterns=["{table}.tsv"],
            caption="../resources/report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
    log:
        "logs/report/reflection.log",
    benchmark:
        "logs/benchmarks/report/reflection.tsv"
    conda:
        "../envs/report.yaml"
    params:
        heldout=HELDOUT,
        models=MODELS,
        cell_lines=CELL_LINES,
        train_lines={h: training_lines_of(h) for h in HELDOUT},
        chrom_folds=PROTOCOL.get("chrom_folds"),
        anchors=REPORT_ANCHORS,
        report=config["report"],
        ece_bins=config["calibration"]["ece_bins"],
        library=library("report_reflection.py"),
    script:
        "../scripts/report_reflection.py"


# ---- the predict path's report: every predicted line x deployed model (rules/predict.smk)
PREDICT_KEYS = [(line, model) for line in PREDICT_LINES for model in PREDICT_MODELS]
PREDICT_TAD_LINES = sorted({c for line in PREDICT_LINES for c in predict_training_lines(line) if c in TAD_SOURCES})


rule report_predict:
    input:
        predictions=[f"results/predict/{line}/{model}/predictions.tsv.gz" for line, model in PREDICT_KEYS],
        genes=[f"results/predict/{line}/{model}/genes.tsv" for line, model in PREDICT_KEYS],
        calibration=[f"results/predict/{line}/{model}/calibration.json" for line, model in PREDICT_KEYS],
        shift=[f"results/predict/{line}/{model}/shift.json" for line, model in PREDICT_KEYS],
        meta=[f"{final_dir(line, model)}/meta.json" for line, model in PREDICT_KEYS],
        # predicted lines that also have labels: does the models' disagreement predict their errors?
        pairs=expand("results/pairs/{line}.tsv.gz", line=[c for c in PREDICT_LINES if c in CELL_LINES]),
        tracks=expand("results/tracks/{line}/{mark}.bw", line=PREDICT_LINES, mark=MARKS),
        # the final models' training lines' TADs: the topology prior drawn under each locus
        tads=[TAD_SOURCES[c] for c in PREDICT_TAD_LINES],
        crispr_summary=[] if CRISPR is None else expand("results/crispr/{name}/summary.tsv", name=CRISPR.name),
        crispr_pr=[] if CRISPR is None else expand("results/crispr/{name}/pr_curves.png", name=CRISPR.name),
        crispr_distance=[] if CRISPR is None else expand("results/crispr/{name}/by_distance.png", name=CRISPR.name),
        crispr_pairs=[] if CRISPR is None else expand("results/crispr/{name}/pairs.tsv.gz", name=CRISPR.name),
        # the labels the deployed model learnt (its final model's validation rows), beside each screen
        crispr_training=(
            []
            if CRISPR is None
            else [f"{final_dir(line, PREDICT_MODELS[0])}/validation.tsv.gz" for line in CRISPR.cell_line]
        ),
        # the screens themselves, for the names of the genes they measured (locus figures)
        screens=[] if CRISPR is None else [row_path(r) for _, r in CRISPR.iterrows()],
        template="resources/report/predict.html.j2",
    output:
        html=report(
            "results/report/predict.html",
            caption="../resources/report/predict.rst",
            category="Predictions",
            labels={"report": "predictions (self-contained HTML)"},
        ),
        # locus figures sit with the report that draws them (one rule's outputs in one place)
        loci=report(
            directory("results/report/predict_loci"),
            patterns=["{line}/{model}/{gene}.png"],
            caption="../resources/report/predict_locus.rst",
            category="Predictions",
            subcategory="loci",
            labels={"line": "{line}", "model": "{model}", "gene": "{gene}"},
        ),
    log:
        "logs/report/predict.log",
    benchmark:
        "logs/benchmarks/report/predict.tsv"
    conda:
        "../envs/report.yaml"
    params:
        line_models=PREDICT_KEYS,
        lines=PREDICT_LINES,
        marks=MARKS,
        labelled=[c for c in PREDICT_LINES if c in CELL_LINES],
        tad_lines=PREDICT_TAD_LINES,
        loci=PREDICT["loci"],
        chrom_map=config["reference"]["chrom_map"],
        screens=[] if CRISPR is None else CRISPR[["name", "cell_line"]].to_dict("records"),
        library=library("report_predict.py"),
    script:
        "../scripts/report_predict.py"
