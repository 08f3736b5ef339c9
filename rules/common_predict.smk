# Config checks, sources and input functions of the predict path (rules/predict.smk) and the CRISPRi benchmarks
# (rules/crispr.smk), which score its outputs; included after rules/common.smk, whose sheets and helpers they use.
from epiflow.io_text import open_by_content
from epiflow.models.trainer import TorchModel
from epiflow.predict import calibration_settings, deployed_params

# ---- predict path (rules/predict.smk)
validate_config("../config/schemas/predict.schema.yaml")
PREDICT = config["predict"]
PREDICT_LINES = list(PREDICT["lines"] or [])
PREDICT_MODELS = list(PREDICT["models"] or [])
PREDICT_TRAIN = list(PREDICT["train"] or CELL_LINES)
CANDIDATES = PREDICT["candidates"]
GENE_ANNOTATION = source_path(CANDIDATES["annotation"]) if CANDIDATES.get("annotation") else None
GENE_LIST = source_path(CANDIDATES["genes"]) if CANDIDATES.get("genes") else None


def predict_needs_profiles():
    """Profiles only when a deployed model reads them (networks); they are most of the feature bytes."""
    return any(issubclass(available_models()[m], TorchModel) for m in PREDICT_MODELS)


def predict_training_lines(line):
    """The labelled lines a predicted line's final model is fitted on: never the line itself."""
    return [c for c in PREDICT_TRAIN if c != line]


def final_dir(line, model):
    return f"results/final/{'+'.join(sorted(predict_training_lines(line)))}/{model}"


def check_predicted_line(line, key="predict.lines"):
    """A line to predict has every mark of `marks`, its enhancer mark as peaks, and >= 2 training lines besides it
    (before any job: check_predict for predict.lines, predict_candidates' input for a line asked for by path)."""
    mark = CANDIDATES["enhancer_mark"]
    have = set(TRACKS.loc[TRACKS.cell_line == line, "mark"])
    if not have:
        config_error(key, f"cell line {line!r} has no tracks in the tracks sheet {config['tracks']}")
    missing = [m for m in MARKS if m not in have]
    if missing:
        config_error(
            key,
            f"{line}: mark(s) {missing} missing in {config['tracks']} (the final models need every mark of "
            f"`marks`: {MARKS})",
        )
    fmt = track_format(line, mark)
    if fmt not in ("narrowpeak", "broadpeak"):
        config_error(
            "predict.candidates.enhancer_mark",
            f"{line}: {mark} must be a narrowpeak/broadpeak track (its peaks are the candidate elements), "
            f"got {fmt!r} in {config['tracks']}",
        )
    if len(predict_training_lines(line)) < 2:
        config_error("predict.train", f"{line}: needs >= 2 labelled training lines other than itself")


def predict_peaks(wc):
    """The enhancer-mark peaks of a line to predict; a line asked for by path only (not in predict.lines) is checked
    here, when the job plan is built, as check_predict checks predict.lines."""
    if wc.line not in PREDICT_LINES:
        check_predicted_line(wc.line, "tracks")
    return TRACK_SOURCES[(wc.line, CANDIDATES["enhancer_mark"])]


def check_predict():
    """Cross-checks of the predict config and the sheets that no schema can express (before any job)."""
    check_threshold_key("predict.threshold", config["predict"]["threshold"])
    unknown = [c for c in PREDICT_TRAIN if c not in CELL_LINES]
    if unknown:
        config_error("predict.train", f"line(s) {unknown} have no row in the pairs sheet {config['pairs']}")
    for line in PREDICT_LINES:
        check_predicted_line(line)
    for model in PREDICT_MODELS:
        if model not in available_models():
            config_error("predict.models", f"unknown model {model!r} (expected among {sorted(available_models())})")
        if "loci" in available_models()[model].needs:  # scores the training pairs' loci, not a line's marks
            config_error("predict.models", f"{model} scores loci seen in training and cannot be deployed")
        try:
            check_model_params(model, config["model_params"].get(model, {}))
        except (KeyError, ValueError) as error:
            config_error(f"model_params.{model}", str(error.args[0] if error.args else error))
    for key, path in (("annotation", GENE_ANNOTATION), ("genes", GENE_LIST)):
        if path and local_source_state(CANDIDATES[key], path) == "missing":
            config_error(f"predict.candidates.{key}", f"{path} not found (expected a file)")

    for i, row in (CRISPR if CRISPR is not None else pd.DataFrame()).iterrows():
        if row["cell_line"] not in PREDICT_LINES:
            raise WorkflowError(
                f"{row['sheet']} line {i}: screen {row['name']!r} of cell line {row['cell_line']!r}, which has no "
                f"predictions (expected a line of predict.lines: {PREDICT_LINES})"
            )


check_predict()


def crispr_prediction_files(name):
    """{model: predictions file} of the screened line, for every deployed model."""
    line = CRISPR.set_index("name").at[name, "cell_line"]
    return {m: f"results/predict/{line}/{m}/predictions.tsv.gz" for m in PREDICT_MODELS}


def also_build_chain():
    """The chain from reference.build to predict.also_build (checked before any job), or None when not asked."""
    build, reference = PREDICT.get("also_build"), config["reference"].get("build")
    if not build or build == reference:
        return None
    key = f"{reference}To{build[0].upper()}{build[1:]}"
    chain = (config.get("liftover") or {}).get(key)
    if not reference or not chain:
        config_error(f"liftover.{key}", f"not set (predict.also_build: {build} lifts from reference.build {reference})")
    return source_path(chain)


ALSO_BUILD_CHAIN = also_build_chain()


def predict_targets():
    screens = [] if CRISPR is None else expand("results/crispr/{name}/summary.tsv", name=CRISPR.name)
    html = ["results/report/predict.html"] if PREDICT_LINES else []  # rules/report.smk, rule report_predict
    if ALSO_BUILD_CHAIN:
        html += expand(
            "results/predict/{line}/{model}/{build}/predictions.tsv.gz",
            line=PREDICT_LINES,
            model=PREDICT_MODELS,
            build=PREDICT["also_build"],
        )
    outputs = expand(
        "results/predict/{line}/{model}/{output}",
        line=PREDICT_LINES,
        model=PREDICT_MODELS,
        output=[
            "predictions.tsv.gz",
            "predictions.threshold.tsv.gz",
            "predictions.bedpe.gz",
            "interact.bb",
            "genes.tsv",
            "shift.json",
        ],
    )
    return screens + html + outputs


def final_model_params(wildcards):
    """The model's config params, with the pair-table-dependent counts excluded (see predict.exclude_columns)."""
    return deployed_params(config, wildcards.model)


def final_inputs(wildcards):
    lines = wildcards.train_key.split("+")
    return {
        "pairs": expand("results/pairs/{cell}.tsv.gz", cell=lines),
        "features": expand("results/features/{cell}.npz", cell=lines),
        "tads": [TAD_SOURCES[c] for c in lines if c in TAD_SOURCES],
    }


def score_inputs(wildcards):
    final = final_dir(wildcards.line, wildcards.model)
    lines = predict_training_lines(wildcards.line)
    return {
        "candidates": f"results/predict/{wildcards.line}/candidates.tsv.gz",
        "features": f"results/predict/{wildcards.line}/features",
        "model": f"{final}/model.pkl",
        "validation": f"{final}/validation.tsv.gz",
        "meta": f"{final}/meta.json",
        # the final model's training lines' Hi-C only: the topology prior (never the predicted line's own)
        "tads": [TAD_SOURCES[c] for c in lines if c in TAD_SOURCES],
    }


# ---- CRISPRi benchmarks (rules/crispr.smk)
CRISPR_OPTIONS = config.get("crispr_options") or {}
# external predictors (ABC, ENCODE-rE2G, ...): registered at parse time so a URL source gets its download job
CRISPR_PREDICTORS = [p | {"source": source_path(p["source"])} for p in config.get("crispr_predictors") or []]
CRISPR_CHAINS = {key: source_path(path) for key, path in (config.get("liftover") or {}).items() if path}
# an input, so a URL is fetched and a changed list reruns the benchmarks
EXPRESSED_GENES = source_path(CRISPR_OPTIONS["expressed_genes"]) if CRISPR_OPTIONS.get("expressed_genes") else None
if (
    EXPRESSED_GENES
    and CRISPR is not None
    and local_source_state(CRISPR_OPTIONS["expressed_genes"], EXPRESSED_GENES) == "missing"
):
    config_error("crispr_options.expressed_genes", f"{EXPRESSED_GENES} not found (expected a file, one gene per line)")


def check_crispr_predictors():
    """An external predictor's local file must exist and carry its score column (read from the header line), when
    a screen of its line scores it (with `crispr: null`, or no screen of its line, no job reads it: as for
    crispr_options.expressed_genes, a file that is not there then stops nothing)."""
    screened = set() if CRISPR is None else set(CRISPR.cell_line)
    for i, spec in enumerate(config.get("crispr_predictors") or []):
        if spec["cell_line"] not in screened:
            continue
        path, where = CRISPR_PREDICTORS[i]["source"], f"crispr_predictors[{i}] ({spec['name']})"
        state = local_source_state(spec["source"], path)
        if state == "missing":
            config_error(where, f"source {path} not found (expected an ABC / ENCODE-rE2G prediction file)")
        if state != "present":
            continue  # a URL download_source fetches, or a file the simulation writes: crispr_benchmark checks it
        try:  # gzip or plain by content, whatever the name says
            with open_by_content(path, "rt") as handle:
                header = handle.readline().rstrip("\r\n").split("\t")
        except (OSError, EOFError, UnicodeDecodeError) as error:
            config_error(where, f"{path} line 1: cannot read the header ({error}; expected tab-separated text)")
        if spec["score_column"] not in header:
            config_error(
                where, f"{path} line 1: no column {spec['score_column']!r} (score_column; the header has {header})"
            )


check_crispr_predictors()


def crispr_row(name):
    rows = CRISPR[CRISPR.name == name] if CRISPR is not None else []
    if len(rows) != 1:
        raise WorkflowError(f"crispr: no single row named {name!r} in the crispr sheet {config.get('crispr')}")
    return rows.iloc[0]


def crispr_reference_build():
    build = (config.get("reference") or {}).get("build")
    if not build:
        raise WorkflowError(f"{CONFIG_FILE}: reference.build: not set (expected hg19, hg38 or sim for crispr)")
    return build


def crispr_chain_key(build):
    """The `liftover` config key of the chain from `build` to the reference build, e.g. hg38ToHg19."""
    reference = crispr_reference_build()
    if "sim" in (build, reference):
        raise WorkflowError(f"crispr: cannot lift between {build} and {reference} (the simulated genome has no chain)")
    key = f"{build}To{reference[0].upper()}{reference[1:]}"
    if key not in CRISPR_CHAINS:
        raise WorkflowError(f"{CONFIG_FILE}: liftover.{key}: not set (needed to lift {build} to {reference})")
    return key


def crispr_external(name):
    """The external predictors of the screen's cell line."""
    return [p for p in CRISPR_PREDICTORS if p["cell_line"] == crispr_row(name)["cell_line"]]


def crispr_chains(name):
    """{source build: chain path} for the screen and every external predictor not in the reference build."""
    builds = {crispr_row(name)["build"]} | {p["build"] for p in crispr_external(name)}
    return {b: CRISPR_CHAINS[crispr_chain_key(b)] for b in sorted(builds) if b != crispr_reference_build()}


def crispr_inputs(wildcards):
    return {
        "screen": row_path(crispr_row(wildcards.name)),
        "tss": "results/reference/tss.tsv.gz",
        "chrom_sizes": "results/reference/chrom_sizes.tsv",
        "predictions": list(crispr_prediction_files(wildcards.name).values()),
        "external": [p["source"] for p in crispr_external(wildcards.name)],
        "chains": list(crispr_chains(wildcards.name).values()),
        "expressed": EXPRESSED_GENES or [],
    }
