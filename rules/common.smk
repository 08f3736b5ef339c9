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
from epiflow.codehash import library_digest  # noqa: E402
from epiflow.download import sha256sum  # noqa: E402
from epiflow.errors import InputError  # noqa: E402
from epiflow.io_text import read_chrom_sizes, read_table  # noqa: E402
from epiflow import metrics  # noqa: E402
from epiflow.models import available_models, model_params, unknown_params  # noqa: E402
from epiflow.selection import check_model_params  # noqa: E402
from epiflow.train import training_lines  # noqa: E402

CONFIG_FILE = ", ".join(str(f) for f in workflow.overwrite_configfiles) or "config/config.yaml"


def config_error(key, message):
    """Stop before any job with a message naming the config key and the file."""
    raise WorkflowError(f"{CONFIG_FILE}: {key}: {message}")


def validate_config(schema):
    """validate(config, schema), its error naming the config files and the dotted key as config_error does (the
    bare jsonschema error names neither the file nor the key in config/README.md's spelling)."""
    try:
        validate(config, schema)
    except WorkflowError as err:
        cause = err.__context__
        key = ".".join(str(p) for p in getattr(cause, "absolute_path", [])) or "config"
        detail = getattr(cause, "message", str(err))
        config_error(key, f"{detail} (expected by {schema.removeprefix('../')}; see config/README.md#config-keys)")


CONFIG_SCHEMAS = ("config/schemas/config.schema.yaml", "config/schemas/predict.schema.yaml")


def check_known_keys():
    """Every key of the merged config is one a schema names (a misspelt key, e.g. predict.line or
    predict.candidates.element_widht, would otherwise be ignored and its default used without a word). Mappings
    without `properties` (simulate, report.anchors) or with `additionalProperties` (model_params) are not walked."""
    schema = {"properties": {}}
    for path in CONFIG_SCHEMAS:
        schema["properties"].update(load_configfile(str(Path(workflow.basedir) / path))["properties"])

    def walk(value, node, prefix):
        if not isinstance(value, dict) or "properties" not in node or "additionalProperties" in node:
            if isinstance(value, list) and isinstance(node.get("items"), dict):
                for i, item in enumerate(value):
                    walk(item, node["items"], f"{prefix}[{i}]")
            return
        for key, sub in value.items():
            name = f"{prefix}.{key}" if prefix else key
            if key not in node["properties"]:
                config_error(
                    name,
                    f"unknown key (expected one of {sorted(node['properties'])}; config/README.md#config-keys)",
                )
            walk(sub, node["properties"][key], name)

    walk(config, schema, "")


validate_config("../config/schemas/config.schema.yaml")
check_known_keys()


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
        hint = ""
        if path in ("null", "None", "~"):  # Snakemake's --config reads `key=null` as the string 'null'
            hint = f" (for none on the command line write --config {key}= with nothing after =, or null in a YAML file)"
        config_error(key, f"sheet {path} not found{hint}")
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


def local_source_state(source, path):
    """What parse time can check of a source: "url" (download_source fetches and verifies it), "present" (a local
    file), "simulated" (a file the demo simulation will write) or "missing"."""
    if "://" in source:
        return "url"
    if os.path.exists(path):
        return "present"
    return "simulated" if SIMULATED_DIR and path.startswith(SIMULATED_DIR + os.sep) else "missing"


def check_local_source(where, source, path, sha256):
    """A local source must exist (unless the demo simulation writes it) and match its sha256 when one is given."""
    state = local_source_state(source, path)
    if state == "missing":
        raise WorkflowError(f"{where}: source {source!r} not found (resolved to {path}; expected a file or a URL)")
    # hashed once, in the main process (jobs re-parse the workflow on a cluster)
    if state == "present" and sha256 and workflow.is_main_process and (found := sha256sum(path)) != sha256.lower():
        raise WorkflowError(f"{where}: checksum mismatch for {path}: sha256 {found} (expected {sha256.lower()})")


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
        try:  # read as reference_chrom_sizes reads it: gzip or plain by content, whatever the name says
            known = set(read_chrom_sizes(CHROM_SIZES_SOURCE))
        except InputError as err:
            config_error("reference.chrom_sizes", str(err))
        for f, fold in enumerate(PROTOCOL.get("chrom_folds") or []):
            unknown = [c for c in fold if c not in known]
            if unknown:
                config_error(
                    "protocol.chrom_folds",
                    f"fold {f + 1} names chromosome(s) {unknown} not in {CHROM_SIZES_SOURCE} "
                    f"(expected names of the reference, e.g. {sorted(known)[:3]})",
                )


check_sources()


def library(script):
    """A script rule's `library` param: the digest of the epiflow modules its script imports (epiflow.codehash).
    Snakemake watches the script itself; this makes an edit to library code it runs rerun the rule (params
    trigger), and leaves rules that do not import the edited module alone."""
    return library_digest(Path(workflow.basedir) / "scripts" / script)


def pair_format(cell_line):
    """The pairs sheet format of a labelled cell line (bengi, targetfinder, bedpe, crispr)."""
    return PAIRS.set_index("cell_line").at[cell_line, "format"]


def is_loop_line(cell_line):
    """Whether a labelled line's pairs are called from loops (a bedpe sheet row): only those read TSSs, the
    enhancer-mark peaks and pairs_from_loops."""
    return pair_format(cell_line) == "bedpe"


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
    if is_loop_line(wildcards.cell_line):
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
