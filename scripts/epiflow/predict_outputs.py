"""What the predict stage writes for a biologist: the ABC-style prediction table, its thresholded calls, a BEDPE
for IGV, a UCSC `interact` bigBed and per-gene statistics. Columns are described in config/README.md.

Coordinates are 0-based half-open, as in BED. An element–gene link is drawn from the element to the gene's TSS
(one base, [TSS, TSS + 1)).
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pybigtools

# the first eight named as ABC / ENCODE-rE2G name them, but `chrom` for their `chr` (CONTRACT.md): rename that one
# column for their tools (CRISPR_comparison reads chr, start, end, TargetGene, CellType)
PREDICTION_COLUMNS = [
    "chrom",
    "start",
    "end",
    "name",
    "TargetGene",
    "TargetGeneTSS",
    "CellType",
    "distance",
    "score",
    "prob",
    "predicted",
    "score_sd",
]
BEDPE_COLUMNS = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score", "strand1", "strand2"]
GENE_COLUMNS = ["TargetGene", "chrom", "TargetGeneTSS", "n_candidates", "n_predicted", "median_distance", "sum_prob"]

# UCSC interact format (https://genome.ucsc.edu/goldenPath/help/interact.html), bed5+13
INTERACT_AUTOSQL = """table interact
"Interaction between two regions"
(
string chrom; "Chromosome of the interaction"
uint chromStart; "Start position of lower region"
uint chromEnd; "End position of upper region"
string name; "Name of item, for display"
uint score; "Score (0-1000)"
double value; "Strength of interaction or other data value. Typically basis for score"
string exp; "Experiment name (metadata for filtering). Use . if not applicable"
string color; "Item color, as r,g,b or hexadecimal #RRGGBB"
string sourceChrom; "Chromosome of source region (directional) or lower region"
uint sourceStart; "Start position in chromosome of source/lower/this region"
uint sourceEnd; "End position in chromosome of source/lower/this region"
string sourceName; "Identifier of source/lower/this region"
string sourceStrand; "Orientation of source/lower/this region: + or -.  Use . if not applicable"
string targetChrom; "Chromosome of target region (directional) or upper region"
uint targetStart; "Start position in chromosome of target/upper/this region"
uint targetEnd; "End position in chromosome of target/upper/other region"
string targetName; "Identifier of target/upper/other region"
string targetStrand; "Orientation of target/upper/other region: + or -.  Use . if not applicable"
)
"""


def prediction_table(candidates: pd.DataFrame, score, score_sd, prob, threshold: float, cell_line: str) -> pd.DataFrame:
    """Every candidate pair with its score, spread, calibrated probability and call (prob >= threshold)."""
    start, end = candidates.enhancer_start.to_numpy(), candidates.enhancer_end.to_numpy()
    chrom = candidates.chrom.astype(str)
    return pd.DataFrame(
        {
            "chrom": chrom.to_numpy(),
            "start": start,
            "end": end,
            "name": (chrom + ":" + pd.Series(start).astype(str).to_numpy() + "-" + pd.Series(end).astype(str)).values,
            "TargetGene": candidates.gene.to_numpy(),
            "TargetGeneTSS": candidates.tss.to_numpy(),
            "CellType": cell_line,
            "distance": candidates.distance.to_numpy(),
            "score": np.asarray(score, np.float64),
            "prob": np.asarray(prob, np.float64),
            "predicted": np.asarray(prob) >= threshold,
            "score_sd": np.asarray(score_sd, np.float64),
        }
    )[PREDICTION_COLUMNS]


def write_table(frame: pd.DataFrame, path) -> None:
    """A (gzipped when the name ends .gz) TSV with a header row."""
    frame.to_csv(path, sep="\t", index=False, float_format="%.6g")


def read_predictions(path) -> pd.DataFrame:
    """A predictions(.threshold).tsv.gz back."""
    return pd.read_csv(path, sep="\t", dtype={"chrom": str, "TargetGene": str})


def _scaled(prob: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(prob) * 1000), 0, 1000).astype(np.int64)


def bedpe_table(calls: pd.DataFrame) -> pd.DataFrame:
    """BEDPE of the calls (IGV shows it as arcs): anchor 1 the element, anchor 2 the TSS; score = 1000 x prob."""
    return pd.DataFrame(
        {
            "chrom1": calls.chrom,
            "start1": calls.start,
            "end1": calls.end,
            "chrom2": calls.chrom,
            "start2": calls.TargetGeneTSS,
            "end2": calls.TargetGeneTSS + 1,
            "name": calls.name + "|" + calls.TargetGene,
            "score": _scaled(calls.prob),
            "strand1": ".",
            "strand2": ".",
        }
    )[BEDPE_COLUMNS]


def write_bedpe(calls: pd.DataFrame, path) -> None:
    """The calls as a gzipped BEDPE without header (IGV reads `.bedpe.gz`)."""
    with gzip.open(path, "wt") as handle:
        bedpe_table(calls).to_csv(handle, sep="\t", index=False, header=False)


def interact_records(calls: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    """(chrom, start, end, rest) records of the interact format, sorted as bigBed needs."""
    lo = np.minimum(calls.start.to_numpy(), calls.TargetGeneTSS.to_numpy())
    hi = np.maximum(calls.end.to_numpy(), calls.TargetGeneTSS.to_numpy() + 1)
    frame = pd.DataFrame({"chrom": calls.chrom.to_numpy(), "lo": lo, "hi": hi})
    tss = calls.TargetGeneTSS
    fields = [  # the 15 fields after chrom, chromStart, chromEnd (INTERACT_AUTOSQL); no blanks: readers split on them
        calls.name + "/" + calls.TargetGene,
        pd.Series(_scaled(calls.prob), index=calls.index).astype(str),
        calls.prob.map("{:.6g}".format),
        ".",
        "0",
        calls.chrom.astype(str),
        calls.start.astype(str),
        calls.end.astype(str),
        calls.name,
        ".",
        calls.chrom.astype(str),
        tss.astype(str),
        (tss + 1).astype(str),
        calls.TargetGene,
        ".",
    ]
    fields = [f if isinstance(f, pd.Series) else pd.Series(f, index=calls.index) for f in fields]
    rest = fields[0].str.cat(fields[1:], sep="\t").to_numpy()
    frame["rest"] = rest
    frame = frame.sort_values(["chrom", "lo", "hi"], kind="stable")
    return list(zip(frame.chrom, frame.lo.astype(int), frame.hi.astype(int), frame.rest, strict=True))


def write_interact(calls: pd.DataFrame, chrom_sizes: dict, path) -> None:
    """The calls as a UCSC `interact` bigBed (pybigtools), readable by the UCSC browser and IGV."""
    sizes = {c: int(s) for c, s in chrom_sizes.items() if c in set(calls.chrom)} or {next(iter(chrom_sizes)): 1}
    writer = pybigtools.open(str(path), "w")
    writer.write(sizes, interact_records(calls), autosql=INTERACT_AUTOSQL)


def read_interact(path) -> pd.DataFrame:
    """An interact bigBed back as a DataFrame of its 18 fields (integers as int, value as float)."""
    reader = pybigtools.open(str(path))
    names = [line.split()[1].rstrip(";") for line in reader.sql().splitlines() if line.strip().endswith('"')][1:]
    rows = [(chrom, *record) for chrom in reader.chroms() for record in reader.records(chrom)]
    frame = pd.DataFrame(rows, columns=names[: len(rows[0])] if rows else names)
    for column in ("chromStart", "chromEnd", "score", "sourceStart", "sourceEnd", "targetStart", "targetEnd"):
        frame[column] = frame[column].astype(np.int64)
    frame["value"] = frame["value"].astype(float)
    return frame


def gene_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per gene: candidates considered, enhancers predicted, median distance of the predicted ones (NaN when none)
    and the summed probability over its candidates."""
    grouped = predictions.groupby("TargetGene", sort=True)
    called = predictions[predictions.predicted].groupby("TargetGene").distance.median()
    table = pd.DataFrame(
        {
            "chrom": grouped.chrom.first(),
            "TargetGeneTSS": grouped.TargetGeneTSS.first(),
            "n_candidates": grouped.size(),
            "n_predicted": grouped.predicted.sum().astype(np.int64),
            "median_distance": called,
            "sum_prob": grouped.prob.sum(),
        }
    )
    return table.rename_axis("TargetGene").reset_index()[GENE_COLUMNS]
