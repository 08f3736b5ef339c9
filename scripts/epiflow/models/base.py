"""The model interface: a PairData bundle in, a score in [0, 1] per pair out; the registry of model names, with
each model's family, inputs and parameters (`describe_models`, `unknown_params`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("enhancer", "promoter", "window")
# Columns the topology prior (epiflow.topology, training lines' Hi-C) appends; the `topology` feature group.
TOPOLOGY_COLUMNS = ("same_tad", "tad_boundaries_crossed", "ctcf_crossed", "promoters_in_window", "enhancers_in_window")
# What a model may read (Model.needs), in words for config/README.md.
NEEDS = {
    "distance": "the pair's distance",
    "loci": "the training pairs' loci (no features)",
    "tracks": "E/P/W mark features from the tracks sheet",
    "profiles": "the marks' profiles across the enhancer-promoter window (features.profile_bins)",
    "sequence": "enhancer and promoter sequence when reference.fasta is given (features.sequence_length > 0)",
    "tads": "the topology prior of the training lines' TADs when a tads sheet is given (exclude `topology` to drop)",
}


@dataclass
class PairData:
    """Pairs with their features, aligned row by row.

    frame: the pair table (pair_id, cell_line, chrom, label, distance, fold, ...);
    table: float32 (n, f) tabular features named by `columns`; profile: float32 (n, marks, bins) or None, its marks
    in the order of the `{mark}_enhancer` columns; seq: int8 (n, 2, length) base codes of enhancer and promoter
    (0..3 = ACGT, 4 = N) or None.
    """

    frame: pd.DataFrame
    table: np.ndarray
    columns: list[str]
    profile: np.ndarray | None = None
    seq: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def y(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.float32)

    @property
    def marks(self) -> list[str]:
        """Marks with E/P/W columns, in table (and profile channel) order."""
        return [c.removesuffix("_enhancer") for c in self.columns if c.endswith("_enhancer")]

    def subset(self, mask: np.ndarray) -> PairData:
        """Rows where mask is true (a boolean array or an index array)."""
        return replace(
            self,
            frame=self.frame.iloc[np.flatnonzero(mask) if mask.dtype == bool else mask].reset_index(drop=True),
            table=self.table[mask],
            profile=None if self.profile is None else self.profile[mask],
            seq=None if self.seq is None else self.seq[mask],
        )

    def select(self, columns: list[str]) -> np.ndarray:
        """The tabular features named in `columns`, in that order."""
        index = [self.columns.index(c) for c in columns]
        return self.table[:, index]

    def without(self, exclude: list[str] | tuple = ()) -> PairData:
        """A copy without the feature groups or columns named in `exclude` (see column_groups); a dropped mark
        also loses its profile channel, and the group `sequence` drops seq."""
        if not exclude:
            return self
        groups = column_groups(self.columns)
        unknown = [e for e in exclude if e not in groups and e not in self.columns and e != "sequence"]
        if unknown:
            known = sorted(set(groups) | {"sequence"})
            raise KeyError(f"exclude_columns: unknown {unknown} (expected feature columns or groups {known})")
        drop = {c for e in exclude for c in groups.get(e, [e] if e in self.columns else [])}
        keep = [c for c in self.columns if c not in drop]
        profile = self.profile
        if profile is not None:
            channels = [i for i, m in enumerate(self.marks) if m not in exclude]
            profile = profile[:, channels] if channels else None
        seq = None if "sequence" in exclude else self.seq
        return replace(self, table=self.select(keep), columns=keep, profile=profile, seq=seq)


def column_groups(columns: list[str]) -> dict[str, list[str]]:
    """Feature groups an ablation can drop: `topology`, `distance`, `enhancer`/`promoter`/`window` (region columns
    of every mark) and each mark's name (its three region columns); `marks` = every region column."""
    groups: dict[str, list[str]] = {"topology": [c for c in columns if c in TOPOLOGY_COLUMNS]}
    groups["distance"] = [c for c in columns if c == "log_distance"]
    for region in REGIONS:
        groups[region] = [c for c in columns if c.endswith(f"_{region}")]
    groups["marks"] = [c for c in columns if c.rsplit("_", 1)[-1] in REGIONS]
    for c in groups["marks"]:
        groups.setdefault(c.rsplit("_", 1)[0], []).append(c)
    return groups


class Model:
    """A trainable scorer. fit() sees training and validation rows only; predict() returns scores in [0, 1].

    params: `model_params.<name>` of the config over the class `defaults`; `exclude_columns` (a list of feature
    columns or groups of column_groups) is honoured by every model that reads the table; `screen_marks` (with
    `screen_margin`, and `screen_with`: a model that screens in its place) asks the training protocol for the
    environment screen (epiflow.selection.screen_marks);
    `ensemble: k` (k > 1) makes every fit the mean of k members (Ensemble).
    """

    uses_gpu = False
    family = ""  # what kind of learner, in a few words (config/README.md)
    needs: tuple[str, ...] = ()  # inputs it reads: keys of NEEDS
    defaults: dict = {}
    # params accepted besides `defaults`, with the value used when unset (not put into `params`)
    optional: dict = {}

    def __init__(self, params: dict, seed: int, checkpoint=None, device: str = "cpu"):
        self.params = self.defaults | dict(params or {})
        self.seed = seed
        self.checkpoint = checkpoint  # a file the model may save per-epoch state to, and resume from
        self.device = device

    def inputs(self, data: PairData) -> PairData:
        """The data with this model's excluded feature groups removed."""
        return data.without(list(self.params.get("exclude_columns") or []))

    def fit(self, train: PairData, val: PairData) -> Model:
        raise NotImplementedError

    def predict(self, data: PairData) -> np.ndarray:
        raise NotImplementedError

    def embed(self, data: PairData) -> np.ndarray | None:
        """A representation for diagnostics (the layer before the head); None when the model has none."""
        return None


# Params every model accepts that are about its inputs and the training protocol, not the learner itself, with the
# value used when unset; `ensemble` is make_model's, the others are read by the training protocol (epiflow.train and
# epiflow.selection).
PROTOCOL_DEFAULTS = {
    "exclude_columns": [],
    "screen_marks": False,
    "screen_margin": 0.005,
    "screen_with": None,
    "grid": None,
    "ensemble": 1,
}
PROTOCOL_PARAMS = ("exclude_columns", "screen_marks", "screen_margin", "screen_with", "grid")  # passed to the model
ENSEMBLE_SEED_STEP = 10_007  # member j of an ensemble trains with seed + j * this


class Ensemble(Model):
    """k members of one model class, member j seeded seed + j * ENSEMBLE_SEED_STEP (member 0 is the plain model),
    each fitted on the same rows with its own checkpoint (`<checkpoint>.m<j>` for j > 0); the score is the members'
    mean. Deep ensembles (Lakshminarayanan et al. 2017) lower the seed-to-seed spread of a network's scores.
    Diagnostics that need one network (embedding, sharpness) read `members[0]`."""

    def __init__(self, cls: type[Model], k: int, params: dict, seed: int, checkpoint=None, device: str = "cpu"):
        super().__init__(params, seed, checkpoint, device)
        self.uses_gpu = cls.uses_gpu
        paths = [checkpoint] + [None if checkpoint is None else Path(f"{checkpoint}.m{j}") for j in range(1, k)]
        self.members = [cls(params, seed + j * ENSEMBLE_SEED_STEP, paths[j], device) for j in range(k)]
        self.params = self.members[0].params | {"ensemble": k}

    def fit(self, train: PairData, val: PairData) -> Ensemble:
        for member in self.members:
            member.fit(train, val)
        return self

    def predict(self, data: PairData) -> np.ndarray:
        return np.mean([member.predict(data) for member in self.members], axis=0)


# gbm_robust's capacity: of five settings retrained on the BENGI study (benchmarks/ablation.py --normalizations
# quantile --params ...), the three with the best mean per-line validation AUPR tied (0.380); this is the smallest
# of them. Chosen on validation lines only.
GBM_ROBUST = {"max_leaf_nodes": 6, "min_samples_leaf": 500, "l2_regularization": 1.0}


def preset(cls: type[Model], name: str, **params) -> type[Model]:
    """A subclass of `cls` registered under `name` whose defaults carry `params` (config params still win)."""
    attributes = {"defaults": cls.defaults | params, "preset": params, "__doc__": f"{cls.__name__} with {params}"}
    return type(name, (cls,), attributes)


def available_models() -> dict[str, type[Model]]:
    """Model name -> class, for every model the config may name."""
    from epiflow.models.baselines import DistanceModel, GBMModel
    from epiflow.models.epinet import EPINET_PRESETS, EpiNet, EpiNetSmall
    from epiflow.models.priors import ABCModel, PropensityModel

    models = {
        "distance": DistanceModel,
        "gbm": GBMModel,
        "gbm_notopo": preset(GBMModel, "gbm_notopo", exclude_columns=["topology"]),
        # capacity held down (few leaves, large leaves, L2): the seed's over-fit to cell-line cues, treated
        "gbm_robust": preset(GBMModel, "gbm_robust", **GBM_ROBUST),
        # the environment screen (epiflow.selection.screen_marks): marks that do not transfer to a held-out training
        # line are dropped before the final fits
        "gbm_screen": preset(GBMModel, "gbm_screen", screen_marks=True),
        # every training line the same total weight (docs/findings/calibration.md, round 2: chosen on validation)
        "gbm_balanced": preset(GBMModel, "gbm_balanced", line_balance=True),
        "abc": ABCModel,
        "propensity": PropensityModel,
        "epinet_small": EpiNetSmall,
        "epinet": EpiNet,
    }
    models |= {name: preset(EpiNet, name, **options) for name, options in EPINET_PRESETS.items()}
    return models


def make_model(name: str, params: dict, seed: int, checkpoint=None, device: str = "cpu") -> Model:
    """Instantiate a model by name; unknown names raise KeyError listing the known ones."""
    models = available_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r} (expected one of {', '.join(sorted(models))})")
    cls, params = models[name], dict(params or {})
    k = (cls.defaults | params).pop("ensemble", PROTOCOL_DEFAULTS["ensemble"])
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{name}: ensemble must be a whole number >= 1, got {k!r}")
    params.pop("ensemble", None)
    if k == 1:
        return cls(params, seed, checkpoint=checkpoint, device=device)
    return Ensemble(cls, k, params, seed, checkpoint=checkpoint, device=device)


def model_params(name: str) -> dict:
    """Every parameter `model_params.<name>` accepts, with its default: the model's own (its preset's defaults,
    then `optional`) and the protocol's (PROTOCOL_DEFAULTS). Unknown names raise KeyError (see make_model)."""
    models = available_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r} (expected one of {', '.join(sorted(models))})")
    cls = models[name]
    own = cls.defaults | {k: v for k, v in cls.optional.items() if k not in cls.defaults}
    return own | {k: v for k, v in PROTOCOL_DEFAULTS.items() if k not in own}


def unknown_params(name: str, params: dict | None) -> list[str]:
    """The keys of `params` (and of its `grid`) that model `name` does not accept, as `key` or `grid.key`."""
    known = model_params(name)
    params = dict(params or {})
    unknown = [key for key in params if key not in known]
    grid = params.get("grid")
    if isinstance(grid, dict):
        unknown += [f"grid.{key}" for key in grid if key not in known]
    return unknown


def describe_models() -> list[dict]:
    """One entry per registered model, in registry order: name, family, needs (keys of NEEDS; `tads` left out when
    the preset excludes the topology group), preset_of (the registered model it presets, or None), preset (the
    values the preset sets) and params (its own parameters with defaults, without PROTOCOL_DEFAULTS)."""
    models = available_models()
    names = {cls: name for name, cls in models.items() if "preset" not in vars(cls)}
    out = []
    for name, cls in models.items():
        preset_of = names.get(cls.__mro__[1]) if "preset" in vars(cls) else None
        excluded = set(cls.defaults.get("exclude_columns") or [])
        params = {k: v for k, v in model_params(name).items() if k not in PROTOCOL_DEFAULTS or k in cls.defaults}
        out.append(
            {
                "name": name,
                "family": cls.family,
                "needs": [n for n in cls.needs if not (n == "tads" and "topology" in excluded)],
                "preset_of": preset_of,
                "preset": dict(vars(cls).get("preset", {})),
                "params": params,
            }
        )
    return out
