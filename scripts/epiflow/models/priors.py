"""Baselines without learned weights: Activity-by-Contact (ABC) and the locus propensity leakage detector."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from epiflow.models.base import Model, PairData

log = logging.getLogger(__name__)

ACTIVITY_MARKS = ("H3K27ac", "DNase")


class ABCModel(Model):
    """Activity-by-Contact (Fulco et al. 2019): score = A·C / Σ A·C over the gene's candidate enhancers.

    Activity A = geometric mean of the `{mark}_enhancer` signals of `activity_marks` (default: H3K27ac and DNase,
    those present); contact C = max(distance, min_distance) ** -gamma (power law). Normalized within each
    (cell_line, gene) group of the rows scored, so scores lie in [0, 1]. No training: fit() only records params.
    """

    family = "Activity-by-Contact (no training)"
    needs = ("distance", "tracks")
    defaults = {"activity_marks": None, "gamma": 0.87, "min_distance": 5000, "pseudocount": 1e-3}

    def fit(self, train: PairData, val: PairData) -> Model:
        self.marks = list(self.params["activity_marks"] or [m for m in ACTIVITY_MARKS if m in train.marks])
        missing = [m for m in self.marks if f"{m}_enhancer" not in train.columns]
        if not self.marks or missing:
            raise ValueError(
                f"abc: activity marks {missing or list(ACTIVITY_MARKS)} have no *_enhancer feature "
                f"(expected among {train.marks}); set model_params.abc.activity_marks"
            )
        return self

    def predict(self, data: PairData) -> np.ndarray:
        p = self.params
        signal = np.maximum(data.select([f"{m}_enhancer" for m in self.marks]).astype(np.float64), 0)
        activity = np.exp(np.log(signal + float(p["pseudocount"])).mean(axis=1))
        distance = np.maximum(data.frame["distance"].to_numpy(np.float64), float(p["min_distance"]))
        abc = activity * distance ** -float(p["gamma"])
        groups = data.frame["cell_line"].astype(str) + "\t" + data.frame["gene"].astype(str)
        total = pd.Series(abc).groupby(groups.to_numpy()).transform("sum").to_numpy()
        return np.where(total > 0, abc / np.where(total > 0, total, 1), 0.0)


def overlap_pairs(query: pd.DataFrame, ref: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) with query row i's [start, end) overlapping ref row j's on the same chrom (vectorized)."""
    qi, rj = [], []
    for chrom, q in query.groupby("chrom", sort=False):
        r = ref[ref["chrom"] == chrom].sort_values("start")
        if r.empty:
            continue
        starts, ends = r["start"].to_numpy(), r["end"].to_numpy()
        longest = int((ends - starts).max())
        # candidates start in (q.start - longest, q.end): a searchsorted range per query, expanded without a loop
        lo = np.searchsorted(starts, q["start"].to_numpy() - longest, side="right")
        hi = np.searchsorted(starts, q["end"].to_numpy(), side="left")
        counts = np.maximum(hi - lo, 0)
        rows = np.repeat(np.arange(len(q)), counts)
        cand = np.repeat(lo, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ok = ends[cand] > q["start"].to_numpy()[rows]
        qi.append(q.index.to_numpy()[rows[ok]])
        rj.append(r.index.to_numpy()[cand[ok]])
    if not qi:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(qi), np.concatenate(rj)


class PropensityModel(Model):
    """Per-promoter and per-enhancer positive rate of the training rows, matched by locus: a leakage detector.

    A promoter matches by (chrom, tss); an enhancer by overlap with training enhancers. Rates are smoothed towards
    the training positive rate with `smoothing` pseudo-rows; the score is their mean. If this scores well on test
    pairs, test loci (not only test cell lines) were seen in training.
    """

    family = "locus propensity: a leakage detector (no features)"
    needs = ("loci",)
    defaults = {"smoothing": 5.0}

    def fit(self, train: PairData, val: PairData) -> Model:
        f = train.frame
        self.prior = float(f["label"].mean())
        self.promoters = f.groupby(["chrom", "tss"])["label"].agg(["sum", "count"])
        enh = f.groupby(["chrom", "enhancer_start", "enhancer_end"])["label"].agg(["sum", "count"]).reset_index()
        self.enhancers = enh.rename(columns={"enhancer_start": "start", "enhancer_end": "end"})
        return self

    def smoothed(self, positives: np.ndarray, total: np.ndarray) -> np.ndarray:
        k = float(self.params["smoothing"])
        return (positives + k * self.prior) / (total + k)

    def predict(self, data: PairData) -> np.ndarray:
        f = data.frame
        prom = self.promoters.reindex(pd.MultiIndex.from_frame(f[["chrom", "tss"]])).fillna(0).to_numpy()
        query = pd.DataFrame(
            {
                "chrom": f["chrom"].to_numpy(),
                "start": f["enhancer_start"].to_numpy(),
                "end": f["enhancer_end"].to_numpy(),
            }
        )
        qi, rj = overlap_pairs(query, self.enhancers)
        enh = np.zeros((len(f), 2))
        np.add.at(enh, qi, self.enhancers[["sum", "count"]].to_numpy(np.float64)[rj])
        matched = np.mean((prom[:, 1] > 0) | (enh[:, 1] > 0))
        log.info(
            "propensity: %.1f%% of %d rows share a promoter or enhancer locus with training", 100 * matched, len(f)
        )
        return (self.smoothed(prom[:, 0], prom[:, 1]) + self.smoothed(enh[:, 0], enh[:, 1])) / 2
