"""The one leakage check of the honest evaluation: no row of the held-out cell line and no row on a test-fold
chromosome in a table that anything is fitted or chosen on (model, validation, calibrator, threshold)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from epiflow.errors import InputError, LeakageError

ROW_COLUMNS = ("pair_id", "cell_line", "chrom")


def assert_no_leakage(frame: pd.DataFrame, heldout: str, test_chroms: Iterable[str], what: str) -> None:
    """Raise LeakageError when a row of ``frame`` comes from cell line ``heldout`` or a chromosome of ``test_chroms``.

    ``frame`` needs columns pair_id, cell_line, chrom (InputError otherwise); ``what`` names the table in the
    message, which also gives the count and the first offending row.
    """
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing columns {missing} (expected {', '.join(ROW_COLUMNS)})")
    test_chroms = sorted(set(test_chroms))
    leaked = (frame["cell_line"] == heldout) | frame["chrom"].isin(test_chroms)
    if leaked.any():
        example = frame.loc[leaked].iloc[0]
        raise LeakageError(
            f"{what}: {int(leaked.sum())} of {len(frame)} rows come from held-out cell line {heldout!r} or "
            f"test-fold chromosomes {test_chroms}, e.g. pair_id {example['pair_id']!r} ({example['cell_line']}, "
            f"{example['chrom']}); they must never be fitted on"
        )
