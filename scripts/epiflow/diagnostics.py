"""Model diagnostics of the train stage (run inside train_heldout jobs, one dict per fold): did the model learn the
held-out line's difference?

`diagnose_model` — a domain probe on the embedding, class-separation geometry on train vs test, sharpness under
random weight perturbations and permutation attribution (with the share that falls on a named spurious cue). Every
function returns plain numbers (JSON-able); NaN where not measurable. torch is imported only where a torch model is
perturbed. The data-side diagnostics and the per-fold summary the report reads are in epiflow.report_diagnostics.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from epiflow.metrics import aupr

log = logging.getLogger(__name__)

PROBE_ROWS_PER_LINE = 300  # balanced subsample per cell line: chance accuracy is then exactly 1 / lines
GEOMETRY_ROWS = 2000
SHARPNESS_RHO = 0.05  # perturbation norm relative to each parameter tensor's norm
SHARPNESS_DRAWS = 5
ATTRIBUTION_ROWS = 1000  # also the rows sharpness is measured on; diagnostics run inside train_heldout jobs
ATTRIBUTION_REPEATS = 2


# ---- model-side ---------------------------------------------------------------------------------------------------
def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of min(n, k) rows drawn without replacement."""
    return np.sort(rng.choice(n, size=min(n, k), replace=False))


def domain_probe(features: np.ndarray, lines: np.ndarray, seed: int = 0) -> dict:
    """Cross-validated accuracy of a linear classifier predicting the cell line from `features` (rows x dims).

    Lines are subsampled to equal size, so chance = 1 / number of lines. Returns accuracy, chance, lines.
    """
    rng = np.random.default_rng(seed)
    names, counts = np.unique(lines, return_counts=True)
    per_line = int(min(counts.min(), PROBE_ROWS_PER_LINE))
    if len(names) < 2 or per_line < 5:
        return {"accuracy": math.nan, "chance": math.nan, "lines": len(names)}
    rows = np.concatenate([rng.choice(np.flatnonzero(lines == c), per_line, replace=False) for c in names])
    # a ridge classifier is linear like logistic regression and fits in closed form (diagnostics must stay cheap)
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    folds = StratifiedKFold(n_splits=min(3, per_line), shuffle=True, random_state=seed)
    accuracy = cross_val_score(probe, features[rows], lines[rows], cv=folds, scoring="accuracy").mean()
    return {"accuracy": float(accuracy), "chance": 1.0 / len(names), "lines": len(names)}


def separation_ratio(embedding: np.ndarray, y: np.ndarray) -> float:
    """Between-class centroid distance / mean within-class distance to the own centroid; NaN with one class."""
    if embedding.shape[0] == 0 or len(np.unique(y)) < 2:
        return math.nan
    centroids = {c: embedding[y == c].mean(axis=0) for c in (0, 1)}
    between = float(np.linalg.norm(centroids[1] - centroids[0]))
    within = float(np.mean([np.linalg.norm(embedding[y == c] - centroids[c], axis=1).mean() for c in (0, 1)]))
    return between / within if within > 0 else math.nan


def _bce(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def sharpness(model, data, rho: float = SHARPNESS_RHO, draws: int = SHARPNESS_DRAWS, seed: int = 0) -> dict:
    """Mean loss increase on `data` when each weight tensor of `model.net` moves by rho x its norm in a random
    direction. Returns loss, sharpness (absolute increase), sharpness_relative (increase / loss) and
    sharpness_rho; NaN for models without a torch `.net`. The weights are restored afterwards.
    """
    net = getattr(model, "net", None)
    if net is None or not hasattr(net, "parameters"):
        return {"loss": math.nan, "sharpness": math.nan, "sharpness_relative": math.nan, "sharpness_rho": rho}
    import torch

    y = data.y.astype(np.float64)
    base = _bce(y, model.predict(data))
    saved = {k: v.detach().clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    increases = []
    try:
        for _ in range(draws):
            with torch.no_grad():
                for param in net.parameters():
                    noise = torch.randn(param.shape, generator=gen).to(param.device, param.dtype)
                    param.add_(noise * (rho * param.norm() / (noise.norm() + 1e-12)))
            increases.append(_bce(y, model.predict(data)) - base)
            net.load_state_dict(saved)
    finally:
        net.load_state_dict(saved)
    increase = float(np.mean(increases))
    relative = increase / base if base > 0 else math.nan
    return {"loss": base, "sharpness": increase, "sharpness_relative": relative, "sharpness_rho": rho}


def feature_groups(data) -> dict[str, dict]:
    """Groups permuted together: one per mark (its E/P/W columns and its profile channel), every other column
    alone, and `sequence` when present. name -> {columns: [...], channel: int | None, seq: bool}."""
    marks = [c.removesuffix("_enhancer") for c in data.columns if c.endswith("_enhancer")]
    groups, used = {}, set()
    for k, mark in enumerate(marks):
        columns = [c for c in data.columns if c.rsplit("_", 1)[0] == mark]
        channel = k if data.profile is not None and k < data.profile.shape[1] else None
        groups[mark] = {"columns": columns, "channel": channel, "seq": False}
        used.update(columns)
    for column in data.columns:
        if column not in used:
            groups[column] = {"columns": [column], "channel": None, "seq": False}
    if data.seq is not None:
        groups["sequence"] = {"columns": [], "channel": None, "seq": True}
    return groups


def _shuffled(data, group: dict, order: np.ndarray):
    """A copy of `data` whose group's columns / profile channel / sequence follow row order `order`."""
    table = data.table.copy()
    index = [data.columns.index(c) for c in group["columns"]]
    table[:, index] = table[order][:, index]
    profile = data.profile
    if group["channel"] is not None:
        profile = profile.copy()
        profile[:, group["channel"]] = profile[order, group["channel"]]
    seq = data.seq[order] if group["seq"] else data.seq
    return replace(data, table=table, profile=profile, seq=seq)


def permutation_attribution(model, data, seed: int = 0, repeats: int = ATTRIBUTION_REPEATS) -> dict[str, float]:
    """AUPR drop when each feature group (see feature_groups) is shuffled across rows, mean over repeats;
    group name -> drop (NaN without positives)."""
    groups = feature_groups(data)
    if data.y.sum() == 0:
        return {name: math.nan for name in groups}
    rng = np.random.default_rng(seed)
    base = aupr(data.y, model.predict(data))
    drops = {}
    for name, group in groups.items():
        losses = [
            base - aupr(data.y, model.predict(_shuffled(data, group, rng.permutation(len(data)))))
            for _ in range(repeats)
        ]
        drops[name] = float(np.mean(losses))
    return drops


def spurious_share(drops: dict[str, float], spurious_groups) -> float:
    """Share of the positive permutation importance that falls on the spurious groups; NaN when none is positive."""
    positive = {c: max(v, 0.0) for c, v in drops.items() if np.isfinite(v)}
    total = sum(positive.values())
    if total <= 0 or not spurious_groups:
        return math.nan
    return float(sum(positive.get(c, 0.0) for c in spurious_groups) / total)


def _embedding_diagnostics(model, train, test, seed: int) -> dict:
    """Domain probe on the embedding and separation geometry on train and test; NaN when embed() is None."""
    rng = np.random.default_rng(seed)
    both = train.subset(_subsample(len(train), 4 * GEOMETRY_ROWS, rng))
    emb_train, emb_test = model.embed(both), model.embed(test)
    out = {"embedding_dim": math.nan, "domain_probe_accuracy": math.nan, "domain_probe_chance": math.nan}
    out |= {"separation_train": math.nan, "separation_test": math.nan}
    if emb_train is None or emb_test is None:
        return out
    features = np.vstack([emb_train, emb_test])
    lines = np.concatenate([both.frame.cell_line.to_numpy(str), test.frame.cell_line.to_numpy(str)])
    probe = domain_probe(features, lines, seed)
    g_train = _subsample(len(both), GEOMETRY_ROWS, rng)
    g_test = _subsample(len(test), GEOMETRY_ROWS, rng)
    out.update(
        embedding_dim=int(emb_train.shape[1]),
        domain_probe_accuracy=probe["accuracy"],
        domain_probe_chance=probe["chance"],
        separation_train=separation_ratio(emb_train[g_train], both.y[g_train]),
        separation_test=separation_ratio(emb_test[g_test], test.y[g_test]),
    )
    return out


def diagnose_model(model, train, test, spurious_columns=(), seed: int = 0) -> dict:
    """All model-side diagnostics for one fitted model.

    model: a fitted epiflow Model (predict(); embed() may return None; `.net` when it is a torch model);
    train / test: PairData of the rows it was fitted on (several cell lines) and of the held-out line;
    spurious_columns: tabular feature names of a known spurious cue (e.g. the demo's H2AZ columns).
    Returns a JSON-able dict: n_train, n_test, domain_probe_accuracy / _chance (embedding) and
    domain_probe_input_accuracy (the same probe on the input features, for reference), separation_train / _test,
    loss / sharpness / sharpness_relative (on training rows), attribution (feature group -> AUPR drop on training
    rows; a mark's group holds its E/P/W columns and profile channel), spurious_groups (groups holding a spurious
    column) and spurious_share (their share of the positive attribution). Unmeasurable values are NaN.
    """
    rng = np.random.default_rng(seed)
    out = {"n_train": len(train), "n_test": len(test)}
    out |= _embedding_diagnostics(model, train, test, seed)
    rows = _subsample(len(train), 4 * GEOMETRY_ROWS, rng)
    inputs = np.vstack([train.table[rows], test.table])
    lines = np.concatenate([train.frame.cell_line.to_numpy(str)[rows], test.frame.cell_line.to_numpy(str)])
    out["domain_probe_input_accuracy"] = domain_probe(inputs, lines, seed)["accuracy"]
    small = train.subset(_subsample(len(train), ATTRIBUTION_ROWS, rng))
    out |= sharpness(model, small, seed=seed)
    drops = permutation_attribution(model, small, seed=seed)
    spurious = [name for name, g in feature_groups(small).items() if set(g["columns"]) & set(spurious_columns)]
    out["attribution"] = drops
    out["spurious_columns"] = [c for c in spurious_columns if c in train.columns]
    out["spurious_groups"] = spurious
    out["spurious_share"] = spurious_share(drops, spurious)
    log.info("diagnostics: %s", {k: v for k, v in out.items() if k != "attribution"})
    return _plain(out)


def _plain(value):
    """numpy scalars (and containers of them) as Python numbers, so json.dump takes the result."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value
