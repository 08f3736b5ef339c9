"""The one leakage check (epiflow.leakage): held-out line and test-fold chromosomes never reach a fitting table."""

import pandas as pd
import pytest

from epiflow.errors import InputError, LeakageError
from epiflow.leakage import assert_no_leakage


def rows():
    return pd.DataFrame({"pair_id": ["p", "q", "r"], "cell_line": ["B", "C", "B"], "chrom": ["chr1", "chr2", "chr3"]})


def test_clean_rows_pass():
    assert_no_leakage(rows(), "A", ["chr4"], "training rows")
    assert_no_leakage(rows(), "A", [], "training rows")


def test_heldout_line_row_is_named_with_the_table():
    frame = rows()
    frame.loc[1, "cell_line"] = "A"
    with pytest.raises(LeakageError, match=r"^pool: 1 of 3 rows .* held-out cell line 'A' .* pair_id 'q' \(A, chr2\)"):
        assert_no_leakage(frame, "A", ["chr4"], "pool")


def test_test_fold_chromosome_rows_are_counted():
    expected = r"2 of 3 rows .* test-fold chromosomes \['chr1', 'chr3'\], e.g. pair_id 'p'"
    with pytest.raises(LeakageError, match=expected):
        assert_no_leakage(rows(), "A", ["chr3", "chr1"], "validation rows")


def test_missing_columns_name_the_table():
    with pytest.raises(InputError, match=r"calibration rows: missing columns \['chrom'\]"):
        assert_no_leakage(rows().drop(columns="chrom"), "A", [], "calibration rows")
