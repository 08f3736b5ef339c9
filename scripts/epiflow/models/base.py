"""The model interface: a PairData bundle in, a score in [0, 1] per pair out."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


@dataclass
class PairData:
    """Pairs with their features, aligned row by row.

    frame: the pair table (pair_id, cell_line, chrom, label, distance, fold, ...);
    table: float32 (n, f) tabular features named by `columns`; profile: float32 (n, marks, bins) or None;
    seq: int8 (n, 2, length) base codes of enhancer and promoter (0..3 = ACGT, 4 = N) or None.
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


class Model:
    """A trainable scorer. fit() sees training and validation rows only; predict() returns scores in [0, 1]."""

    uses_gpu = False

    defaults: dict = {}

    def __init__(self, params: dict, seed: int, checkpoint=None, device: str = "cpu"):
        self.params = self.defaults | dict(params)
        self.seed = seed
        self.checkpoint = checkpoint  # a file the model may save per-epoch state to, and resume from
        self.device = device

    def fit(self, train: PairData, val: PairData) -> Model:
        raise NotImplementedError

    def predict(self, data: PairData) -> np.ndarray:
        raise NotImplementedError

    def embed(self, data: PairData) -> np.ndarray | None:
        """A representation for diagnostics (the layer before the head); None when the model has none."""
        return None


def available_models() -> dict[str, type[Model]]:
    """Model name -> class, for every model the config may name."""
    from epiflow.models.baselines import DistanceModel, GBMModel
    from epiflow.models.epinet import EpiNetSmall

    return {"distance": DistanceModel, "gbm": GBMModel, "epinet_small": EpiNetSmall}


def make_model(name: str, params: dict, seed: int, checkpoint=None, device: str = "cpu") -> Model:
    """Instantiate a model by name; unknown names raise KeyError listing the known ones."""
    models = available_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r} (expected one of {', '.join(sorted(models))})")
    return models[name](params, seed, checkpoint=checkpoint, device=device)
