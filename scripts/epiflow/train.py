"""The training protocol for one held-out cell line and one model.

For each chromosome fold f: the test rows are the held-out line's pairs on fold f's chromosomes; the pool is the
training lines' pairs on every other chromosome. Within the pool each training line is the validation set in turn
(early stopping and model choice there), so every pool row gets an out-of-fold `val` score from a model that never
saw its cell line — the data calibration and threshold choice are fitted on. Hyper-parameters given as a `grid`
param are chosen per fold on the same validation sets, marks by the environment screen (both in epiflow.selection:
`choose_params`, `screen_marks`). With `protocol.validation: chromosome` the validation sets are groups of the pool's
chromosomes instead (every training line stays a training environment of each fit; `val` scores are then
out-of-chromosome, not out-of-cell-line). Test scores average the fold's models.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow.errors import LeakageError
from epiflow.io_pairs import read_pair_table
from epiflow.io_regions import read_tads
from epiflow.leakage import assert_no_leakage
from epiflow.models import PairData, make_model
from epiflow.selection import check_model_params, choose_setting, validation_groups

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["pair_id", "cell_line", "chrom", "label", "distance", "fold", "split", "score"]


def training_lines(all_lines: list[str], heldout: str, train: list[str] | None) -> list[str]:
    """Training cell lines for a held-out line: `train` from the protocol, or every other line."""
    lines = [c for c in (train or all_lines) if c != heldout]
    if train and heldout in train:
        log.info("held-out line %s removed from the training list for its own model set", heldout)
    return lines


def fold_chromosomes(chrom_folds: list[list[str]] | None, chroms: list[str]) -> list[list[str]]:
    """The test chromosomes of each fold; without folds, one fold holding every chromosome."""
    return [list(f) for f in chrom_folds] if chrom_folds else [sorted(chroms)]


def check_cell_line(frame: pd.DataFrame, cell_line: str, source: str) -> None:
    """Raise LeakageError when a pair table holds a row of another cell line (e.g. an injected held-out pair)."""
    other = (frame["cell_line"] != cell_line).to_numpy()
    if other.any():
        row = int(np.flatnonzero(other)[0])
        raise LeakageError(
            f"{source} (pairs of {cell_line}) row {row + 1}: pair {frame['pair_id'].iloc[row]} belongs to cell line "
            f"{frame['cell_line'].iloc[row]!r}; a table must hold only its own line's pairs"
        )


def concat_data(parts: list[PairData]) -> PairData:
    """Stack PairData of several cell lines (same feature columns)."""
    columns = parts[0].columns
    for p in parts:
        if p.columns != columns:
            raise ValueError("feature columns differ between cell lines; rebuild features with one config")
    stack = lambda arrays: None if any(a is None for a in arrays) else np.concatenate(arrays)  # noqa: E731
    return PairData(
        frame=pd.concat([p.frame for p in parts], ignore_index=True),
        table=np.concatenate([p.table for p in parts]),
        columns=columns,
        profile=stack([p.profile for p in parts]),
        seq=stack([p.seq for p in parts]),
    )


def score_frame(data: PairData, scores: np.ndarray, fold: int, split: str) -> pd.DataFrame:
    """Rows of the score table for `data` scored with `scores`."""
    out = data.frame[["pair_id", "cell_line", "chrom", "label", "distance"]].copy()
    out["fold"], out["split"], out["score"] = fold, split, scores
    return out


@dataclass
class FoldFit:
    """One fold's validation fits: per validation set (name, mask over pool rows, fitted model), and what the grid or
    the environment screen chose on the validation sets (empty when the model has neither)."""

    fits: list[tuple[str, np.ndarray, object]]
    screened: dict = field(default_factory=dict)  # screened_out, screen_gain, screened_with (report diagnostics)
    screen: dict | None = None  # dropped, trace, with: written to the model JSON
    grid: dict | None = None  # chosen, trace


def fit_fold(
    pool: PairData,
    train_lines: list[str],
    model_name: str,
    params: dict,
    seed: int,
    fold: int = 0,
    checkpoint_dir: Path | None = None,
    device: str = "cpu",
    validation: str = "cell_line",
    validation_folds: int = 3,
) -> FoldFit:
    """The models of one fold: one per validation set, fitted on the pool without it (grid and screen chosen on
    the same validation sets first). The pool must already be free of the held-out line and test chromosomes."""
    resolved = check_model_params(model_name, params)  # a malformed grid or ensemble fails before any fit
    groups = validation_groups(pool.frame, train_lines, validation, validation_folds)
    for v, is_val in groups:
        if pool.y[is_val].sum() == 0 or pool.y[~is_val].sum() == 0:
            raise ValueError(f"fold {fold}: validation set {v} or its training rows have no positives")
    if resolved.get("screen_marks") and validation != "cell_line" and fold == 0:
        log.warning("screen under %r validation: measures transfer across chromosomes, not lines", validation)
    fit_params, chosen_fits, record = choose_setting(pool, groups, model_name, params, resolved, seed, device, fold)
    fits = []
    for i, (v, is_val) in enumerate(groups):
        if chosen_fits is not None:  # the fold's final models: fitted on these rows with the chosen setting
            model = chosen_fits[i]
        else:
            ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"fold{fold}_{v}.pt"
            model = make_model(model_name, fit_params, seed, checkpoint=ckpt, device=device)
            model.fit(pool.subset(~is_val), pool.subset(is_val))
        fits.append((v, is_val, model))
    return FoldFit(fits, record.get("screened", {}), record.get("screen"), record.get("grid"))


def fold_splits(
    pool_all: PairData, test_all: PairData, heldout: str, chrom_folds: list[list[str]] | None
) -> Iterator[tuple[int, PairData, PairData]]:
    """(fold, training pool, test rows) of each chromosome fold, the pool checked free of the held-out line and the
    fold's test chromosomes; without folds, one fold: the whole pool and every held-out row."""
    chroms = sorted(set(pool_all.frame.chrom) | set(test_all.frame.chrom))
    for f, test_chroms in enumerate(fold_chromosomes(chrom_folds, chroms)):
        in_fold = pool_all.frame.chrom.isin(test_chroms).to_numpy()
        pool = pool_all.subset(~in_fold) if chrom_folds else pool_all
        test = test_all.subset(test_all.frame.chrom.isin(test_chroms).to_numpy())
        where = f"fold {f} training pool" if chrom_folds else "training pool"
        assert_no_leakage(pool.frame, heldout, test_chroms if chrom_folds else [], where)
        yield f, pool, test


def score_fold(
    fold: FoldFit, pool: PairData, test: PairData, f: int, spurious_columns, seed: int
) -> tuple[list[pd.DataFrame], list[dict], list[dict]]:
    """One fold's score rows (val per validation set, then train averaged over the fits that trained on a row, then
    test averaged over the fold's models), its per-fit notes and (with `spurious_columns`) its first fit's
    diagnostics."""
    rows, notes, diagnostics = [], [], []
    test_scores, train_sum, train_n = [], np.zeros(len(pool)), np.zeros(len(pool))
    for i, (v, is_val, model) in enumerate(fold.fits):
        train, val = pool.subset(~is_val), pool.subset(is_val)
        rows.append(score_frame(val, model.predict(val), f, "val"))
        train_sum[~is_val] += model.predict(train)
        train_n[~is_val] += 1
        test_scores.append(model.predict(test))
        notes.append({"fold": f, "validation_set": v, "n_train": len(train), "n_val": len(val)})
        if spurious_columns is not None and i == 0:
            from epiflow.diagnostics import diagnose_model

            one = getattr(model, "members", [model])[0]  # an ensemble's embedding and weights: its first member
            found = diagnose_model(one, train, test, tuple(spurious_columns), seed)
            diagnostics.append({"fold": f, "validation_set": v} | found | fold.screened)
    rows.append(score_frame(pool, train_sum / np.maximum(train_n, 1), f, "train"))
    rows.append(score_frame(test, np.mean(test_scores, axis=0), f, "test"))
    return rows, notes, diagnostics


def run_heldout(
    data: dict[str, PairData],
    heldout: str,
    train_lines: list[str],
    chrom_folds: list[list[str]] | None,
    model_name: str,
    params: dict,
    seed: int,
    checkpoint_dir: Path | None = None,
    device: str = "cpu",
    spurious_columns: tuple[str, ...] | None = None,
    validation: str = "cell_line",
    validation_folds: int = 3,
) -> tuple[pd.DataFrame, dict]:
    """Train and score one model for one held-out line; returns the score table and per-fit notes.

    With `spurious_columns` given (may be empty), the first model of each fold is also diagnosed
    (epiflow.diagnostics.diagnose_model: domain probe, geometry, sharpness, attribution); notes["diagnostics"].
    """
    check_training_lines(heldout, train_lines)
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    pool_all = concat_data([data[c] for c in train_lines])
    rows, notes, diagnostics, screens, grids = [], [], [], [], []
    for f, pool, test in fold_splits(pool_all, data[heldout], heldout, chrom_folds):
        fold = fit_fold(
            pool, train_lines, model_name, params, seed, f, checkpoint_dir, device, validation, validation_folds
        )
        screens += [fold.screen] if fold.screen else []
        grids += [fold.grid] if fold.grid else []
        fold_rows, fold_notes, fold_diagnostics = score_fold(fold, pool, test, f, spurious_columns, seed)
        rows, notes, diagnostics = rows + fold_rows, notes + fold_notes, diagnostics + fold_diagnostics
    scores = pd.concat(rows, ignore_index=True)[SCORE_COLUMNS]
    info = {"heldout": heldout, "model": model_name, "train_lines": train_lines, "validation": validation}
    info["fits"] = notes
    if screens:
        info["screen"] = screens
    if grids:
        info["grid"] = grids
    return scores, info | ({"diagnostics": diagnostics} if spurious_columns is not None else {})


def check_training_lines(heldout: str, train_lines: list[str]) -> None:
    """A held-out or predicted line is never among its own training lines, and validation needs >= 2 lines."""
    if heldout in train_lines:
        raise LeakageError(f"held-out line {heldout!r} is listed among its own training lines {train_lines}")
    if len(train_lines) < 2:
        raise ValueError(f"need >= 2 training cell lines to validate on a held-out line, got {train_lines}")


def load_cell_data(pairs_path: str | Path, features_path: str | Path, cell_line: str | None = None) -> PairData:
    """One cell line's pair table and feature file, aligned by pair_id (they must hold the same pairs)."""
    from epiflow.features import load_features

    frame = read_pair_table(pairs_path)
    if cell_line is not None:
        check_cell_line(frame, cell_line, str(pairs_path))
    feats = load_features(features_path)
    if not np.array_equal(feats["pair_id"], frame.pair_id.to_numpy(dtype=str)):
        raise ValueError(f"{features_path}: pairs differ from {pairs_path}; rerun features_compute")
    return PairData(frame, feats["values"], [str(c) for c in feats["columns"]], feats["profile"], feats.get("seq"))


def load_heldout_data(
    heldout: str, train_lines: list[str], pairs: dict, features: dict, tads: dict, chrom_map=None
) -> dict[str, PairData]:
    """What rule train_heldout trains on: the held-out and training lines' pairs + features (paths by line), with the
    conserved-TAD prior from the TAD lists (paths by line) of the training lines only."""
    data = {c: load_cell_data(pairs[c], features[c]) for c in [heldout, *train_lines]}
    reference = {c: read_tads(p, chrom_map=chrom_map) for c, p in tads.items() if c in train_lines}
    return add_topology(data, reference, heldout)


def add_topology(
    data: dict[str, PairData], reference_tads: dict[str, pd.DataFrame], heldout: str
) -> dict[str, PairData]:
    """Append the conserved-topology prior (training lines' TADs, leave-self-out) to every line's features."""
    from epiflow.topology import topology_features

    if not reference_tads:
        return data
    out = {}
    for line, d in data.items():
        topo = topology_features(d.frame, reference_tads, heldout)
        values = np.nan_to_num(topo.to_numpy(dtype=np.float32), nan=0.0)
        out[line] = PairData(d.frame, np.hstack([d.table, values]), d.columns + list(topo.columns), d.profile, d.seq)
    return out
