"""The predict stage: deploy a final model on a cell line without labels, genome-wide.

A final model is fitted once per (training lines, model) with the evaluation protocol's own fold fit
(epiflow.train.fit_fold) on every chromosome of its training lines: one model per training line left out in turn,
each scoring the line it did not see. Those leave-one-line-out `val` scores are what calibration, the label-shift
estimator and the threshold are fitted on (epiflow.calibrate.calibrate_fold, exactly as for a held-out line). A
candidate pair's `score` is the mean of the leave-one-line-out models' scores (as a held-out line's test score is)
and `score_sd` their spread: a pair whose score depends on which training line was seen is one to distrust.
A predicted line is never among its final model's training lines (`check_not_trained_on`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from epiflow.errors import LeakageError
from epiflow.models import PairData
from epiflow.models.base import Model, available_models
from epiflow.train import SCORE_COLUMNS, concat_data, fit_fold, score_frame

log = logging.getLogger(__name__)


@dataclass
class FinalModel:
    """The deployed model: one fit per left-out training line, their out-of-line validation scores, metadata."""

    name: str
    models: list[Model]
    validation: pd.DataFrame  # SCORE_COLUMNS rows, split "val": each training line scored by the model without it
    meta: dict  # training_lines, feature_columns, params, config_digest, versions, screen/grid records

    def score(self, data: PairData) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) over the leave-one-line-out models of each pair's score."""
        scores = np.stack([m.predict(data) for m in self.models])
        return scores.mean(axis=0), scores.std(axis=0)


def training_key(lines: list[str]) -> str:
    """The directory name of a final model: its training lines, sorted, joined by '+'."""
    return "+".join(sorted(lines))


def config_digest(settings: dict) -> str:
    """sha256 (first 16 hex digits) of the settings that define a final model, as canonical JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    """Versions of the libraries a fitted model depends on."""
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
    }


def fit_final(
    data: dict[str, PairData],
    train_lines: list[str],
    model_name: str,
    params: dict,
    seed: int,
    device: str = "cpu",
    settings: dict | None = None,
) -> FinalModel:
    """Fit the final model of `model_name` on every chromosome of `train_lines` (>= 2), each training line left out
    in turn (validation: cell_line), grid and screen chosen on those validation lines as in the evaluation."""
    if len(train_lines) < 2:
        raise ValueError(f"a final model needs >= 2 labelled training lines to validate on, got {train_lines}")
    pool = concat_data([data[c] for c in train_lines])
    fold = fit_fold(pool, train_lines, model_name, params, seed, device=device, validation="cell_line")
    parts = [score_frame(pool.subset(is_val), m.predict(pool.subset(is_val)), 0, "val") for _, is_val, m in fold.fits]
    meta = {
        "model": model_name,
        "training_lines": sorted(train_lines),
        "validation_lines": [v for v, _, _ in fold.fits],
        "feature_columns": pool.columns,
        "uses_profile": pool.profile is not None,
        "params": params,
        "seed": seed,
        "n_train_pairs": len(pool),
        "config_digest": config_digest(settings or {}),
        "versions": versions(),
    }
    meta |= {"screen": fold.screen} if fold.screen else {}
    meta |= {"grid": fold.grid} if fold.grid else {}
    validation = pd.concat(parts, ignore_index=True)[SCORE_COLUMNS]
    return FinalModel(model_name, [m for _, _, m in fold.fits], validation, meta)


class _ModelPickler(pickle.Pickler):
    """Pickles models whose class is a registry preset (made at run time, not importable) by registry name."""

    def reducer_override(self, obj):
        cls = type(obj)
        if isinstance(obj, Model) and getattr(sys.modules.get(cls.__module__), cls.__name__, None) is not cls:
            return _rebuild_model, (cls.__name__, obj.__dict__)
        return NotImplemented


def _rebuild_model(name: str, state: dict) -> Model:
    cls = available_models()[name]
    model = cls.__new__(cls)
    model.__dict__.update(state)
    return model


def save_final(final: FinalModel, model_path, validation_path, meta_path) -> None:
    """The fitted models (pickle), their validation scores (TSV) and the metadata (JSON)."""
    with open(model_path, "wb") as handle:
        _ModelPickler(handle, protocol=pickle.HIGHEST_PROTOCOL).dump({"name": final.name, "models": final.models})
    final.validation.to_csv(validation_path, sep="\t", index=False, float_format="%.6g")
    Path(meta_path).write_text(json.dumps(final.meta, indent=1, default=str) + "\n")


def load_final(model_path, validation_path, meta_path) -> FinalModel:
    """Read back what save_final wrote."""
    with open(model_path, "rb") as handle:
        saved = pickle.load(handle)
    validation = pd.read_csv(validation_path, sep="\t", dtype={"chrom": str, "pair_id": str})
    meta = json.loads(Path(meta_path).read_text())
    return FinalModel(saved["name"], saved["models"], validation, meta)


def check_not_trained_on(line: str, final: FinalModel) -> None:
    """A predicted line is never in its own final model's training set (its labels would be scored by a model
    that saw them)."""
    if line in final.meta["training_lines"]:
        raise LeakageError(
            f"predicted line {line!r} is among the training lines {final.meta['training_lines']} of its final "
            f"{final.name} model; a line is predicted only by a model fitted without it"
        )


def check_columns(line: str, final: FinalModel, columns: list[str], source: str) -> None:
    """The candidate features must carry every column the final model was fitted on, in the same order."""
    expected = list(final.meta["feature_columns"])
    if list(columns) != expected:
        missing = [c for c in expected if c not in columns]
        raise ValueError(
            f"{source}: feature columns of {line} differ from those {final.name} was fitted on (missing {missing}; "
            f"expected {expected}); rebuild the features with the same marks and config"
        )


def score_chunk(final: FinalModel, line: str, data: PairData, tads: dict, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, score_sd) of one chunk of a line's candidates (PairData of the predict features), after the topology
    prior of the final model's training lines' TADs (`tads`: line -> domains; never the line's own)."""
    from epiflow.train import add_topology

    data = add_topology({line: data}, tads, heldout=line)[line]
    check_columns(line, final, data.columns, source)
    return final.score(data)


def score_candidates(final: FinalModel, line: str, candidates: pd.DataFrame, feature_files, tads: dict):
    """(score, score_sd) of every candidate, one chromosome's feature file (predict_features) at a time."""
    from epiflow.features import load_features

    score, spread = np.full(len(candidates), np.nan), np.full(len(candidates), np.nan)
    position = pd.Series(np.arange(len(candidates)), index=candidates.pair_id.to_numpy())
    for path in feature_files:
        feats = load_features(path)
        rows = position.loc[feats["pair_id"]].to_numpy()
        profile = feats["profile"] if feats["profile"].shape[-1] else None
        frame = candidates.iloc[rows].reset_index(drop=True)
        data = PairData(frame, feats["values"], list(feats["columns"]), profile, feats.get("seq"))
        score[rows], spread[rows] = score_chunk(final, line, data, tads, str(path))
    if np.isnan(score).any():
        raise ValueError(f"{int(np.isnan(score).sum())} candidates of {line} have no features; rerun predict_features")
    return score, spread


def deployed_params(config: dict, model: str) -> dict:
    """The params a final model of `model` is fitted with: its `model_params`, with `predict.exclude_columns` (the
    pair-table-dependent counts) added to its excluded columns."""
    params = dict(config["model_params"].get(model, {}))
    extra = list(config["predict"].get("exclude_columns") or [])
    if extra:
        params["exclude_columns"] = list(params.get("exclude_columns") or []) + extra
    return params


def calibration_settings(config: dict) -> dict:
    """The calibrate stage's settings for a predicted line: `calibration` (`fit_balance`, `threshold_balance`
    included) with the predict path's threshold rule and label-shift estimator, which (a user's line, nothing held
    out) re-weights the line's probabilities, and the threshold's validation rows with them, when it is em or bbse."""
    predict = config["predict"]
    return config["calibration"] | {
        "threshold": predict["threshold"],
        "label_shift": predict["label_shift"],
        "label_shift_apply": True,
    }


def calibrate_candidates(final: FinalModel, line: str, scores: np.ndarray, cfg: dict) -> tuple[np.ndarray, dict]:
    """Calibrated probabilities of a line's candidate scores and the calibration notes (method, label-shift
    estimator, the line's estimated positive rate, threshold), fitted on the final model's validation rows only."""
    # imported here, not at the top: the workflow imports this module at start-up (calibration_settings), and the
    # calibrate stage pulls in scikit-learn, 0.4 s of every snakemake start otherwise
    from epiflow.calibrate import calibrate_fold

    candidates = pd.DataFrame(
        {"pair_id": "", "cell_line": line, "chrom": "", "label": np.nan, "distance": 0, "fold": 0, "split": "test"},
        index=range(len(scores)),
    ).assign(score=scores)
    fold = pd.concat([final.validation, candidates], ignore_index=True)
    out, notes = calibrate_fold(fold, line, [], cfg)
    test = (out.split == "test").to_numpy()
    return out.prob.to_numpy()[test], notes
