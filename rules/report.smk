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
        # model diagnostics (domain probe, geometry, sharpness, attribution) written by train_model
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
        "benchmarks/report/reflection.tsv"
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
    script:
        "../scripts/report_reflection.py"
