"""Model and setting choice on the validation sets of one fold's training pool (the pool never holds the held-out
line or the fold's test chromosomes; epiflow.train builds it and fits with what is chosen here).

The validation sets are each training line in turn, or with `protocol.validation: chromosome` groups of the pool's
chromosomes (`validation_groups`). Every choice is by the mean validation AUPR of models fitted on each set's
complement (`validation_score`): a `grid` param's setting (`choose_params`), the marks the environment screen keeps
(`screen_marks`, by the model itself or a `screen_with` proxy); `choose_setting` runs the one a model asks for.
`check_model_params` checks a model's params before any data is read (rules/common.smk) and before a fold's first fit.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from epiflow.models import PairData, make_model
from epiflow.models.base import PROTOCOL_PARAMS

log = logging.getLogger(__name__)


def validation_groups(
    pool: pd.DataFrame, train_lines: list[str], validation: str = "cell_line", n_groups: int = 3
) -> list[tuple[str, np.ndarray]]:
    """(name, boolean mask over pool rows) of each validation set, used in turn.

    cell_line: each training line; chromosome: the pool's chromosomes dealt round-robin (sorted by name) into
    `n_groups` groups, every training line's rows on them (each line then stays a training environment).
    """
    if validation == "cell_line":
        return [(line, (pool.cell_line == line).to_numpy()) for line in train_lines]
    if validation != "chromosome":
        raise ValueError(f"protocol.validation {validation!r} is unknown (expected cell_line or chromosome)")
    chroms = sorted(pool.chrom.unique())
    if len(chroms) < 2:
        raise ValueError(f"chromosome validation needs >= 2 chromosomes in the training pool, got {chroms}")
    k = min(n_groups, len(chroms))
    return [(",".join(chroms[i::k]), pool.chrom.isin(chroms[i::k]).to_numpy()) for i in range(k)]


def validation_score(
    pool: PairData, groups: list, model_name: str, params: dict, seed: int, device: str
) -> tuple[float, list]:
    """Mean over the validation sets of the AUPR of a model fitted on each set's complement (the criterion of the
    screen and the grid), and those models, one per validation set: the fold's final fits when the setting wins."""
    from epiflow.metrics import aupr

    scores, models = [], []
    for _, is_val in groups:
        train, val = pool.subset(~is_val), pool.subset(is_val)
        models.append(make_model(model_name, params, seed, device=device).fit(train, val))
        scores.append(aupr(val.y, models[-1].predict(val)))
    return float(np.mean(scores)), models


def screen_marks(
    pool: PairData, groups: list, model_name: str, params: dict | None, seed: int, device: str = "cpu"
) -> tuple[list[str], list[dict], float, list]:
    """Environment screen: drop the cell-specific marks whose link to the label does not carry over to a held-out
    training line. Backward elimination on the mean validation AUPR (each validation set fitted without it): the
    mark whose removal raises it most is dropped while the rise exceeds `screen_margin`; at least one mark stays.
    Distance, topology and sequence are never screened. Uses the pool (training lines, training chromosomes) only.

    Returns the dropped marks, the trace (every candidate's validation score per round), the validation AUPR the
    drops gained (0 when nothing was dropped) and the models of the chosen mark set, one per validation set."""
    params = dict(params or {})
    resolved = make_model(model_name, params, seed).params  # the preset's defaults under the config's params
    margin = float(resolved.get("screen_margin", 0.005))
    excluded = list(resolved.get("exclude_columns") or [])
    marks = [m for m in pool.marks if m not in excluded]
    dropped: list[str] = []
    start, models = validation_score(pool, groups, model_name, params, seed, device)
    base = start
    trace = [{"round": 0, "dropped": [], "candidate": None, "val_aupr": base}]
    while len(marks) - len(dropped) > 1:
        best, best_score, best_fits = None, -np.inf, None  # only the round's best models are kept
        for mark in (m for m in marks if m not in dropped):
            trial = params | {"exclude_columns": [*excluded, *dropped, mark]}
            score, fits = validation_score(pool, groups, model_name, trial, seed, device)
            if score > best_score:  # the first of equal scores wins
                best, best_score, best_fits = mark, score, fits
            step = {"round": len(dropped) + 1, "dropped": list(dropped), "candidate": mark, "val_aupr": score}
            trace.append(step)
        if best_score - base <= margin:
            break
        dropped.append(best)
        base, models = best_score, best_fits
        log.info("screen: %s dropped (validation AUPR %.4f)", best, base)
    return dropped, trace, base - start, models


def grid_combinations(grid) -> list[dict]:
    """The settings of a `grid` param ({name: [values, ...]}): every combination, keys in sorted order, values in the
    order given (the first of equally good settings wins, so list the simpler value first)."""
    if not isinstance(grid, dict) or not grid or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ValueError(f"grid: expected a mapping of parameter name -> non-empty list of values, got {grid!r}")
    protocol = sorted(set(grid) & (set(PROTOCOL_PARAMS) - {"exclude_columns"}))  # a column set may be searched
    if protocol:
        raise ValueError(f"grid: {protocol} cannot be searched (protocol settings, not hyper-parameters)")
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def proxy_params(resolved: dict) -> dict:
    """The params a `screen_with` proxy screens with: its own preset's, the screening model's margin and excluded
    columns (so the proxy sees the same inputs), and no screen, grid or proxy of its own."""
    proxy = make_model(resolved["screen_with"], {}, 0).params
    keep = {k: v for k, v in proxy.items() if k not in ("screen_marks", "screen_with", "grid")}
    return keep | {k: resolved[k] for k in ("screen_margin", "exclude_columns") if resolved.get(k) is not None}


def check_model_params(model_name: str, params: dict | None) -> dict:
    """The model's resolved params (its preset's defaults under `params`), after the checks that need no data: an
    unknown model, a malformed `ensemble` or `grid`, grid + screen_marks, and a `screen_with` that is not a known
    model or comes without screen_marks raise (KeyError / ValueError). Called when the workflow starts
    (rules/common.smk) and again before a fold's first fit."""
    resolved = make_model(model_name, params, 0).params
    if resolved.get("grid") is not None:
        grid_combinations(resolved["grid"])
        if resolved.get("screen_marks"):
            raise ValueError(f"{model_name}: grid and screen_marks cannot be combined; use one per model")
    proxy = resolved.get("screen_with")
    if proxy is not None:
        if not resolved.get("screen_marks"):
            raise ValueError(f"{model_name}: screen_with {proxy!r} needs screen_marks: true")
        if not isinstance(proxy, str):
            raise ValueError(f"{model_name}: screen_with must be a model name, got {proxy!r}")
        make_model(proxy, {}, 0)  # an unknown model raises KeyError naming the known ones
    return resolved


def choose_params(
    pool: PairData, groups: list, model_name: str, params: dict | None, seed: int, device: str = "cpu"
) -> tuple[dict, list[dict], list]:
    """Hyper-parameter choice on validation only: each setting of the model's `grid` param is scored by the mean
    validation AUPR over the validation sets (`validation_score`: each fitted on its complement in the pool, the
    training lines' training chromosomes) and the best wins, the first on ties. Returns the chosen values, the
    trace ({params, val_aupr} per setting) and the chosen setting's models, one per validation set."""
    grid = make_model(model_name, params, seed).params.get("grid")
    base = {k: v for k, v in (params or {}).items() if k != "grid"}
    trace, best, best_fits = [], None, None  # only the best setting's models are kept
    for setting in grid_combinations(grid):
        score, fits = validation_score(pool, groups, model_name, base | setting, seed, device)
        trace.append({"params": setting, "val_aupr": score})
        if best is None or score > best["val_aupr"]:  # the first of equal scores wins
            best, best_fits = trace[-1], fits
        log.info("grid: %s -> validation AUPR %.4f", setting, score)
    return best["params"], trace, best_fits


def choose_setting(
    pool: PairData, groups: list, model_name: str, params: dict, resolved: dict, seed: int, device: str, fold: int
) -> tuple[dict, list | None, dict]:
    """What validation decides before a fold's final fits: the params to fit with, the winning setting's validation
    fits when the grid or a self-screen already made them (else None), and the grid/screen records."""
    record: dict = {}
    fits, fit_params = None, params
    if resolved.get("grid") is not None:
        chosen, trace, fits = choose_params(pool, groups, model_name, params, seed, device)
        record["grid"] = {"fold": fold, "chosen": chosen, "trace": trace}
        log.info("fold %d: grid chose %s", fold, chosen)
    if resolved.get("screen_marks"):
        proxy = resolved.get("screen_with")
        if proxy is None:  # the model screens itself: the chosen mark set's validation fits are its final models
            dropped, trace, gain, fits = screen_marks(pool, groups, model_name, params, seed, device)
        else:  # a proxy model screens; this model is then fitted on the marks it kept
            dropped, trace, gain, _ = screen_marks(pool, groups, proxy, proxy_params(resolved), seed, device)
            excluded = list(resolved.get("exclude_columns") or [])
            fit_params = dict(params or {}) | {"exclude_columns": [*excluded, *dropped]}
        record["screen"] = {"fold": fold, "dropped": dropped, "trace": trace} | ({"with": proxy} if proxy else {})
        record["screened"] = {"screened_out": dropped, "screen_gain": gain, "screened_with": proxy or model_name}
        log.info("fold %d: screen%s dropped %s", fold, f" with {proxy}" if proxy else "", dropped or "nothing")
    return fit_params, fits, record
