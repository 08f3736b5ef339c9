import hashlib
import os
import re
import sys
from pathlib import Path

import pandas as pd
from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from epiflow.errors import InputError  # noqa: E402
from epiflow.io_text import open_by_content, read_table  # noqa: E402
from epiflow import metrics  # noqa: E402
from epiflow.models import available_models, model_params, unknown_params  # noqa: E402
from epiflow.predict import calibration_settings, deployed_params  # noqa: E402
from epiflow.train import check_model_params, training_lines  # noqa: E402
from epiflow.models.trainer import TorchModel  # noqa: E402

CONFIG_FILE = ", ".join(str(f) for f in workflow.overwrite_configfiles) or "config/config.yaml"
validate(config, "../config/schemas/config.schema.yaml")


def config_error(key, message):
    """Stop before any job with a message naming the config key and the file."""
    raise WorkflowError(f"{CONFIG_FILE}: {key}: {message}")


# keys whose demo value (config/config.yaml, always loaded first) names the simulated genome or its data
DEMO_KEYS = (
    "reference.build",
    "reference.fasta",
    "reference.annotation",
    "pairs",
    "tracks",
    "tads",
    "marks",
    "protocol.chrom_folds",
    "report.spurious_marks",
    "predict.lines",
    "crispr",
)


def _lookup(tree, key):
    """(found, value) of a dotted key in a nested dict."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False, None
        tree = tree[part]
    return True, tree


DEMO_CONFIG = (Path(workflow.basedir) / "config" / "config.yaml").resolve()  # the demo's; the Snakefile loads it first


def own_config():
    """What the run's own --configfile files and --config set, merged; config/config.yaml among the --configfile
    files is left out, as it holds the demo's values that check_demo_keys looks for."""
    given = {}
    for path in workflow.config_settings.configfiles:
        if Path(path).resolve() != DEMO_CONFIG:
            update_config(given, load_configfile(path))
    update_config(given, dict(workflow.config_settings.config))
    return given


def check_demo_keys():
    """A run on a genome of its own (reference.build, fasta or annotation other than the demo's) must set every
    DEMO_KEYS key in its own config, and predict.candidates.max_distance when it predicts: the demo's values (the
    simulated chromosomes' folds, lineE, the planted cue H2AZ, 1 Mb for 3 Mb chromosomes) would otherwise reach it
    silently. Chrom sizes of one's own, or a null FASTA (no sequence features), with the demo's build and annotation
    count as the demo's genome (its chromosomes are checked against the sizes later)."""
    genome = ("build", "fasta", "annotation")
    demo = load_configfile(DEMO_CONFIG)["reference"]
    reference = config["reference"]
    differ = [key for key in genome if reference.get(key) != demo.get(key)]
    if reference.get("fasta") is None and "fasta" in differ:
        differ.remove("fasta")  # a null FASTA turns sequence features off; it names no other genome
    if not differ:
        return
    given = own_config()
    keys = list(DEMO_KEYS) + (["predict.candidates.max_distance"] if config["predict"].get("lines") else [])
    inherited = [f"{key} ({_lookup(config, key)[1]!r})" for key in keys if not _lookup(given, key)[0]]
    if inherited:
        named = [f"{key} {reference.get(key)!r}" for key in differ]
        differs = f"{', '.join(named[:-1])} and {named[-1]} are" if len(named) > 1 else f"{named[0]} is"
        config_error(
            "reference",
            f"{differs} not the demo's, but these keys keep the demo's values from config/config.yaml, which name the "
            f"simulated genome and its data: {', '.join(inherited)} (expected each set in your config, as "
            "config/template.yaml does; null or [] where not used)",
        )


check_demo_keys()


def check_threshold_key(key, rule):
    """A threshold rule as epiflow.metrics.check_threshold_rule takes it, checked before any job."""
    try:
        metrics.check_threshold_rule(rule.get("rule", "f1"), rule.get("target"))
    except InputError as err:
        config_error(key, str(err))


def load_sheet(key, schema, unique):
    """Read a TSV sheet named by config[key], validate every row with its schema, check uniqueness."""
    path = config.get(key)
    if not path:
        return None
    if not os.path.exists(path):
        config_error(key, f"sheet {path} not found")
    try:  # indexed by file line: comment lines (#) and blank lines are counted, not read
        sheet = read_table(path, header=True, skip_prefixes=("#",))
    except InputError as err:
        raise WorkflowError(str(err)) from None
    required = {"tracks": ("cell_line", "mark", "source", "format"), "crispr": ("name", "cell_line", "source", "build")}
    for column in required.get(key, ("cell_line", "source", "format")):
        if column not in sheet.columns:
            raise WorkflowError(
                f"{path} line {sheet.attrs['header_line']}: missing column {column!r} in the header "
                f"{list(sheet.columns)} (expected it there)"
            )
    for i, row in sheet.iterrows():
        try:
            validate(row.replace("", None).dropna().to_dict(), schema)
        except WorkflowError as err:
            # snakemake wraps the jsonschema error; its message and field are what the user needs
            cause = err.__context__
            field = ".".join(str(p) for p in getattr(cause, "path", [])) or "row"
            detail = getattr(cause, "message", str(err))
            raise WorkflowError(
                f"{path} line {i}: column {field}: {detail} (expected by {schema.removeprefix('../')})"
            ) from None
    dup = sheet.duplicated(unique)
    if dup.any():
        again = sheet.index[dup][0]
        repeated = tuple(sheet.loc[again, unique])
        first = sheet.index[(sheet[unique] == repeated).all(axis=1)][0]
        raise WorkflowError(
            f"{path} line {again}: duplicate {' x '.join(unique)} {repeated}, already on line {first} "
            "(expected one row each)"
        )
    sheet["sheet"] = path
    return sheet


PAIRS = load_sheet("pairs", "../config/schemas/pairs.schema.yaml", ["cell_line"])
TRACKS = load_sheet("tracks", "../config/schemas/tracks.schema.yaml", ["cell_line", "mark"])
TADS = load_sheet("tads", "../config/schemas/tads.schema.yaml", ["cell_line"])
# CRISPRi screens (EPCrisprBenchmark TSVs) scored against the predict path's outputs (rules/crispr.smk)
CRISPR = load_sheet("crispr", "../config/schemas/crispr.schema.yaml", ["name"])

CELL_LINES = list(PAIRS.cell_line)
TRACK_LINES = list(dict.fromkeys(TRACKS.cell_line))  # labelled and predicted lines: every line with tracks
MARKS = list(config["marks"])
MODELS = list(config["models"])
PROTOCOL = config["protocol"]
HELDOUT = list(PROTOCOL.get("test") or CELL_LINES)
TRAIN = PROTOCOL.get("train")


def check_model_param_names():
    """Every `model_params` entry names a registered model, and each of its keys (and `grid` keys) a parameter of it
    (config/README.md lists them)."""
    for model, params in config["model_params"].items():
        if model not in available_models():
            config_error(f"model_params.{model}", f"unknown model (expected among {sorted(available_models())})")
        for key in unknown_params(model, params):
            known = ", ".join(model_params(model))
            config_error(f"model_params.{model}.{key}", f"unknown parameter of {model} (expected one of: {known})")


def check_config():
    """Cross-checks of config and sheets that no schema can express."""
    for line in HELDOUT + list(TRAIN or []):
        if line not in CELL_LINES:
            config_error("protocol", f"cell line {line!r} has no row in the pairs sheet {config['pairs']}")
    if TRAIN and set(TRAIN) & set(HELDOUT):
        both = sorted(set(TRAIN) & set(HELDOUT))
        config_error("protocol", f"test cell line(s) {both} also listed in train (a held-out line is never trained on)")
    for line in CELL_LINES:
        have = set(TRACKS.loc[TRACKS.cell_line == line, "mark"])
        if not have:
            config_error("tracks", f"cell line {line!r} has no tracks in {config['tracks']}")
        missing = [m for m in MARKS if m not in have]
        if missing:
            config_error("marks", f"mark(s) {missing} missing for cell line {line!r} in {config['tracks']}")
    unknown = [m for m in MODELS if m not in available_models()]
    if unknown:
        config_error("models", f"unknown model(s) {unknown} (expected among {sorted(available_models())})")
    check_model_param_names()
    for model in MODELS:
        try:
            check_model_params(model, config["model_params"].get(model, {}))
        except (KeyError, ValueError) as error:  # KeyError: screen_with names an unknown model
            config_error(f"model_params.{model}", str(error.args[0] if error.args else error))
    calibration = config["calibration"]
    check_threshold_key("calibration.threshold", calibration["threshold"])
    if calibration["threshold_reweight"] == "always" and not calibration["label_shift_apply"]:
        config_error(
            "calibration.threshold_reweight",
            "always re-weights the threshold's rows to the held-out rows' own estimate "
            "(expected as_heldout, or label_shift_apply: true with it)",
        )
    folds = PROTOCOL.get("chrom_folds") or []
    flat = [c for f in folds for c in f]
    if len(flat) != len(set(flat)):
        config_error("protocol.chrom_folds", "a chromosome is listed in more than one fold")
    if "bedpe" in set(PAIRS.format):
        mark = config["pairs_from_loops"]["enhancer_mark"]
        rows = TRACKS[(TRACKS.mark == mark) & TRACKS.cell_line.isin(PAIRS.cell_line[PAIRS.format == "bedpe"])]
        bad = rows[~rows.format.isin(["narrowpeak", "broadpeak"])]
        if len(bad) or len(rows) < (PAIRS.format == "bedpe").sum():
            config_error(
                "pairs_from_loops.enhancer_mark", f"{mark} must be a narrowpeak/broadpeak track of every bedpe line"
            )


check_config()


def one_of(names):
    """A wildcard constraint matching exactly one of `names` (regex characters such as `.` taken literally)."""
    return "|".join(map(re.escape, names))


wildcard_constraints:
    cell_line=one_of(CELL_LINES),
    heldout=one_of(HELDOUT),
    model=one_of(MODELS),
    mark="[A-Za-z0-9_.+-]+",


# ---- sources: local paths are used in place, URLs are fetched into resources/cache/ by rules/download.smk
DOWNLOADS = {}


def source_path(source, sheet_dir=".", sha256=None):
    """The local path of a sheet/config source; a URL maps to its cache file (registered for download)."""
    if "://" in source:
        key = hashlib.sha1(source.encode()).hexdigest()[:10]
        path = f"resources/cache/{key}/{os.path.basename(source.split('?')[0])}"
        DOWNLOADS[path] = {"url": source, "sha256": sha256 or None}
        return path
    return os.path.normpath(os.path.join(sheet_dir, source))


def row_path(row):
    return source_path(row["source"], os.path.dirname(row["sheet"]), row.get("sha256") or None)


def reference_source(key):
    ref = config["reference"]
    return source_path(ref[key], ".", ref.get(f"{key}_sha256")) if ref.get(key) else None


FASTA_SOURCE = reference_source("fasta")
ANNOTATION_SOURCE = reference_source("annotation")
CHROM_SIZES_SOURCE = reference_source("chrom_sizes")
if not FASTA_SOURCE and not CHROM_SIZES_SOURCE:
    config_error("reference", "give reference.fasta or reference.chrom_sizes")
PAIR_SOURCES = {r.cell_line: row_path(r) for _, r in PAIRS.iterrows()}
TRACK_SOURCES = {(r.cell_line, r.mark): row_path(r) for _, r in TRACKS.iterrows()}
TAD_SOURCES = {} if TADS is None else {r.cell_line: row_path(r) for _, r in TADS.iterrows()}
USE_SEQUENCE = bool(FASTA_SOURCE) and config["features"]["sequence_length"] > 0
SIMULATED_DIR = os.path.normpath(config["simulate"]["outdir"]) if "simulate" in config else None


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def local_file_missing(source, path):
    """A local source (not a URL: download_source fetches and verifies those) whose file is absent, unless the
    demo simulation writes it."""
    if "://" in source or os.path.exists(path):
        return False
    return not (SIMULATED_DIR and path.startswith(SIMULATED_DIR + os.sep))


def check_local_source(where, source, path, sha256):
    """A local source must exist (unless the demo simulation writes it) and match its sha256 when one is given."""
    if local_file_missing(source, path):
        raise WorkflowError(f"{where}: source {source!r} not found (resolved to {path}; expected a file or a URL)")
    present = "://" not in source and os.path.exists(path)  # not a URL, nor a file the simulation will write
    # hashed once, in the main process (jobs re-parse the workflow on a cluster)
    if present and sha256 and workflow.is_main_process and file_sha256(path) != sha256.lower():
        raise WorkflowError(
            f"{where}: checksum mismatch for {path}: sha256 {file_sha256(path)} (expected {sha256.lower()})"
        )


def check_sources():
    """Every sheet row's and reference source's local file exists and matches its checksum; fold chromosomes
    are in a local chrom sizes file (else pairs_extract checks them once the chrom sizes are built)."""
    for sheet in (PAIRS, TRACKS, TADS, CRISPR):
        for i, row in (sheet if sheet is not None else pd.DataFrame()).iterrows():
            where = f"{row['sheet']} line {i}"
            check_local_source(where, row["source"], row_path(row), row.get("sha256") or None)
    ref = config["reference"]
    for key, path in (("fasta", FASTA_SOURCE), ("annotation", ANNOTATION_SOURCE), ("chrom_sizes", CHROM_SIZES_SOURCE)):
        if path:
            check_local_source(f"{CONFIG_FILE}: reference.{key}", ref[key], path, ref.get(f"{key}_sha256"))
    if CHROM_SIZES_SOURCE and os.path.exists(CHROM_SIZES_SOURCE):
        known = set(pd.read_csv(CHROM_SIZES_SOURCE, sep="\t", header=None, usecols=[0], dtype=str)[0])
        for f, fold in enumerate(PROTOCOL.get("chrom_folds") or []):
            unknown = [c for c in fold if c not in known]
            if unknown:
                config_error(
                    "protocol.chrom_folds",
                    f"fold {f + 1} names chromosome(s) {unknown} not in {CHROM_SIZES_SOURCE} "
                    f"(expected names of the reference, e.g. {sorted(known)[:3]})",
                )


check_sources()


def pair_format(cell_line):
    """The pairs sheet format of a labelled cell line (bengi, targetfinder, bedpe, crispr)."""
    return PAIRS.set_index("cell_line").at[cell_line, "format"]


def track_format(cell_line, mark):
    """The sheet format of a cell line's mark, or None when the sheet has no such track."""
    rows = TRACKS[(TRACKS.cell_line == cell_line) & (TRACKS.mark == mark)]
    return rows.format.iloc[0] if len(rows) else None


def training_lines_of(heldout):
    """The training cell lines of a held-out line under this config's protocol."""
    return training_lines(CELL_LINES, heldout, TRAIN)


def model_uses_gpu(model):
    return available_models()[model].uses_gpu


# ---- input functions
def pairs_inputs(wildcards):
    """The pair source; for loop (bedpe) sources also the TSS table and the enhancer-mark peaks."""
    inputs = {"source": PAIR_SOURCES[wildcards.cell_line], "chrom_sizes": "results/reference/chrom_sizes.tsv"}
    if pair_format(wildcards.cell_line) == "bedpe":
        mark = config["pairs_from_loops"]["enhancer_mark"]
        inputs["tss"] = "results/reference/tss.tsv.gz"
        inputs["peaks"] = TRACK_SOURCES[(wildcards.cell_line, mark)]
    return inputs


def train_inputs(wildcards):
    """Pairs and features of the held-out line and its training lines; TADs of the training lines only."""
    lines = [wildcards.heldout] + training_lines_of(wildcards.heldout)
    return {
        "pairs": expand("results/pairs/{cell}.tsv.gz", cell=lines),
        "features": expand("results/features/{cell}.npz", cell=lines),
        # a held-out line's own Hi-C made its labels: never a feature (train.py asserts it again)
        "tads": [TAD_SOURCES[c] for c in training_lines_of(wildcards.heldout) if c in TAD_SOURCES],
    }


# ---- targets
def final_targets():
    return [
        "results/report/reflection.html",
        "results/metrics/summary.tsv",
        *expand("results/predictions/{heldout}/{model}.tsv.gz", heldout=HELDOUT, model=MODELS),
    ]


# ---- predict path (rules/predict.smk)
validate(config, "../config/schemas/predict.schema.yaml")
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
        if path and local_file_missing(CANDIDATES[key], path):
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
if EXPRESSED_GENES and CRISPR is not None and local_file_missing(CRISPR_OPTIONS["expressed_genes"], EXPRESSED_GENES):
    config_error("crispr_options.expressed_genes", f"{EXPRESSED_GENES} not found (expected a file, one gene per line)")


def check_crispr_predictors():
    """An external predictor's local file must exist and carry its score column (read from the header line)."""
    for i, spec in enumerate(config.get("crispr_predictors") or []):
        path, where = CRISPR_PREDICTORS[i]["source"], f"crispr_predictors[{i}] ({spec['name']})"
        if local_file_missing(spec["source"], path):
            config_error(where, f"source {path} not found (expected an ABC / ENCODE-rE2G prediction file)")
        if "://" in spec["source"] or not os.path.exists(path):
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
        "predictions": list(crispr_prediction_files(wildcards.name).values()),
        "external": [p["source"] for p in crispr_external(wildcards.name)],
        "chains": list(crispr_chains(wildcards.name).values()),
        "expressed": EXPRESSED_GENES or [],
    }
