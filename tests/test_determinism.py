"""Two clean runs of the demo on the CPU give byte-identical results (same seeds, same code, same machine)."""

from __future__ import annotations

import gzip

import pytest

from conftest import copy_workflow, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    """A second full demo run in its own fresh directory."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo_again"))
    run_snakemake(workdir)
    return workdir


def test_summary_is_byte_identical(demo_run, second_run):
    first = (demo_run / "results/metrics/summary.tsv").read_bytes()
    assert len(first.splitlines()) > 1
    assert first == (second_run / "results/metrics/summary.tsv").read_bytes()


def test_predictions_are_byte_identical(demo_run, second_run):
    """Every prediction table (decompressed: gzip headers may carry a time stamp)."""
    tables = sorted((demo_run / "results/predictions").rglob("*.tsv.gz"))
    assert tables
    for path in tables:
        again = second_run / path.relative_to(demo_run)
        assert gzip.decompress(path.read_bytes()) == gzip.decompress(again.read_bytes()), path.name
