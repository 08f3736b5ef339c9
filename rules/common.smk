import hashlib
import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from epiflow.models import available_models  # noqa: E402
from epiflow.train import check_model_params  # noqa: E402

CONFIG_FILE = ", ".join(str(f) for f in workflow.overwrite_configfiles) or "config/config.yaml"
validate(config, "../config/schemas/config.schema.yaml")


def config_error(key, message):
    """Stop before any job with a message naming the config key and the file."""
    raise WorkflowError(f"{CONFIG_FILE}: {key}: {message}")


def load_sheet(key, schema, unique):
    """Read a TSV sheet named by config[key], validate every row with its schema, check uniqueness."""
    path = config.get(key)
    if not path:
        return None
    if not os.path.exists(path):
        config_error(key, f"sheet {path} not found")
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    for column in ("cell_line", "source", "format") + (("mark",) if key == "tracks" else ()):
        if column not in sheet.columns:
            raise WorkflowError(
                f"{path} line 1: missing column {column!r} in the header {list(sheet.columns)} (expected it there)"
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
                f"{path} line {i + 2}: column {field}: {detail} (expected by {schema.removeprefix('../')})"
            ) from None
    dup = sheet.duplicated(unique)
    if dup.any():
        again = sheet.index[dup][0]
        repeated = tuple(sheet.loc[again, unique])
        first = sheet.index[(sheet[unique] == repeated).all(axis=1)][0]
        raise WorkflowError(
            f"{path} line {again + 2}: duplicate {' x '.join(unique)} {repeated}, already on line {first + 2} "
            "(expected one row each)"
        )
    sheet["sheet"] = path
    return sheet


PAIRS = load_sheet("pairs", "../config/schemas/pairs.schema.yaml", ["cell_line"])
TRACKS = load_sheet("tracks", "../config/schemas/tracks.schema.yaml", ["cell_line", "mark"])
TADS = load_sheet("tads", "../config/schemas/tads.schema.yaml", ["cell_line"])

CELL_LINES = list(PAIRS.cell_line)
MARKS = list(config["marks"])
MODELS = list(config["models"])
PROTOCOL = config["protocol"]
HELDOUT = list(PROTOCOL.get("test") or CELL_LINES)
TRAIN = PROTOCOL.get("train")


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
    for model in MODELS:
        try:
            check_model_params(model, config["model_params"].get(model, {}))
        except (KeyError, ValueError) as error:  # KeyError: screen_with names an unknown model
            config_error(f"model_params.{model}", str(error.args[0] if error.args else error))
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


wildcard_constraints:
    cell_line="|".join(CELL_LINES),
    heldout="|".join(HELDOUT),
    model="|".join(MODELS),
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


def check_local_source(where, source, path, sha256):
    """A local source must exist (unless the demo simulation writes it) and match its sha256 when one is given."""
    if "://" in source:
        return  # URLs are fetched and verified by download_source
    if not os.path.exists(path):
        if SIMULATED_DIR and path.startswith(SIMULATED_DIR + os.sep):
            return
        raise WorkflowError(f"{where}: source {source!r} not found (resolved to {path}; expected a file or a URL)")
    # hashed once, in the main process (jobs re-parse the workflow on a cluster)
    if sha256 and workflow.is_main_process and file_sha256(path) != sha256.lower():
        raise WorkflowError(
            f"{where}: checksum mismatch for {path}: sha256 {file_sha256(path)} (expected {sha256.lower()})"
        )


def check_sources():
    """Every sheet row's and reference source's local file exists and matches its checksum; fold chromosomes
    are in a local chrom sizes file (else pairs_extract checks them once the chrom sizes are built)."""
    for sheet in (PAIRS, TRACKS, TADS):
        for i, row in (sheet if sheet is not None else pd.DataFrame()).iterrows():
            where = f"{row['sheet']} line {i + 2}"
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


def track_format(cell_line, mark):
    """The sheet format of a cell line's mark, or None when the sheet has no such track."""
    rows = TRACKS[(TRACKS.cell_line == cell_line) & (TRACKS.mark == mark)]
    return rows.format.iloc[0] if len(rows) else None


def training_lines_of(heldout):
    return [c for c in (TRAIN or CELL_LINES) if c != heldout]


def model_uses_gpu(model):
    return available_models()[model].uses_gpu


# ---- input functions
def pairs_inputs(wildcards):
    """The pair source; for loop (bedpe) sources also the TSS table and the enhancer-mark peaks."""
    inputs = {"source": PAIR_SOURCES[wildcards.cell_line], "chrom_sizes": "results/reference/chrom_sizes.tsv"}
    if PAIRS.set_index("cell_line").at[wildcards.cell_line, "format"] == "bedpe":
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
