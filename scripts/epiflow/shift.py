"""How far is a predicted line from the training lines? Label-free, on identical coordinates.

Benchmark pairs and genome-wide candidates are different samples of the genome, so their features cannot be compared
directly. Every line is therefore measured on the same reference coordinates: a seeded sample of the training lines'
labelled pairs, whose features are computed from each line's own tracks. A line's shift is the mean over feature
columns of the 1-Wasserstein distance between its features and the pooled features of the lines it is compared with
(`feature_shift`: raw in pooled-SD units, and after a per-line z-score), plus a domain probe (cross-validated
accuracy of a linear classifier telling it from them; chance 0.5). The predicted line is compared with all training
lines; each training line with the others (the validation lines: the range calibration was checked on). The warning
fires when the predicted line is further than every validation line on the raw W1 or the probe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from epiflow.diagnostics import domain_probe

REFERENCE_PAIRS = 20_000  # reference coordinates sampled from the training lines' pairs


def _zscore(values: np.ndarray) -> np.ndarray:
    """Standardize each column (within one cell line); a constant column becomes 0."""
    sd = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def feature_shift(train: dict[str, np.ndarray], test: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Per-feature W1 between the pooled training lines (line -> (n, f) values) and the test line ((m, f) values).

    Returns one row per column: `feature`, `w1_raw` (in units of the pooled training SD, so features compare) and
    `w1_normalized` (after a per-line z-score, which removes location/scale differences such as one lab's x3
    scaling; what remains is a change of shape). A per-line *rank* transform is not used: it makes every line's
    marginal uniform by construction, so W1 would be ~0 whatever the shift.
    """
    pooled = np.vstack(list(train.values())).astype(np.float64)
    pooled_norm = np.vstack([_zscore(np.asarray(v, np.float64)) for v in train.values()])
    test = np.asarray(test, np.float64)
    test_norm = _zscore(test)
    sd = pooled.std(axis=0)
    rows = []
    for j, name in enumerate(columns):
        raw = wasserstein_distance(pooled[:, j], test[:, j]) / sd[j] if sd[j] > 0 else 0.0
        rows.append(
            {
                "feature": name,
                "w1_raw": float(raw),
                "w1_normalized": float(wasserstein_distance(pooled_norm[:, j], test_norm[:, j])),
            }
        )
    return pd.DataFrame(rows)


def reference_coordinates(pairs: list[pd.DataFrame], n: int = REFERENCE_PAIRS, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of at most `n` distinct pair coordinates from the training lines' pair tables."""
    table = pd.concat(pairs, ignore_index=True).drop_duplicates("pair_id")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(table), size=min(n, len(table)), replace=False))
    return table.iloc[rows].reset_index(drop=True)


def line_distance(values: dict[str, np.ndarray], line: str, others: list[str], columns: list[str], seed: int = 0):
    """Shift of `line` from the pooled `others` on identical coordinates: mean raw and normalized W1 over the
    columns, the per-column table, and the domain probe accuracy (balanced, chance 0.5)."""
    table = feature_shift({c: values[c] for c in others}, values[line], columns)
    pooled = np.vstack([values[c] for c in others])
    features = np.vstack([pooled, values[line]])
    labels = np.array(["training"] * len(pooled) + [line] * len(values[line]))
    probe = domain_probe(features, labels, seed)
    summary = {
        "w1_raw": float(table.w1_raw.mean()),
        "w1_normalized": float(table.w1_normalized.mean()),
        "domain_probe_accuracy": probe["accuracy"],
    }
    return summary, table


def shift_summary(values: dict[str, np.ndarray], line: str, train_lines: list[str], columns: list[str], seed=0):
    """The shift record of a predicted line (JSON-able) and its per-feature table: its distance from the training
    lines, each validation line's distance from the other training lines, and whether it lies outside their range."""
    summary, table = line_distance(values, line, train_lines, columns, seed)
    validation = {}
    for v in train_lines:
        validation[v], _ = line_distance(values, v, [c for c in train_lines if c != v], columns, seed)
    beyond = [
        key for key in ("w1_raw", "domain_probe_accuracy") if summary[key] > max(r[key] for r in validation.values())
    ]
    record = {
        "line": line,
        "training_lines": train_lines,
        "reference_pairs": int(len(values[line])),
        "distance": summary,
        "validation_lines": validation,
        "beyond_validation_range": beyond,
        "warning": warning_text(line, summary, validation, beyond),
        "features": table.to_dict(orient="records"),
    }
    return record, table


def warning_text(line: str, summary: dict, validation: dict, beyond: list[str]) -> str | None:
    """A plain-language warning when the line is further from the training lines than any validation line was."""
    if not beyond:
        return None
    worst = max(validation.values(), key=lambda r: r["w1_raw"])
    return (
        f"{line} is further from the training lines than any validation line was (mean W1 {summary['w1_raw']:.2f} vs "
        f"at most {worst['w1_raw']:.2f}; domain probe {summary['domain_probe_accuracy']:.2f}). Calibration and the "
        "threshold were only checked inside that range: treat its probabilities as a ranking, not as frequencies."
    )
