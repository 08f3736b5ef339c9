"""Every configuration the repository ships plans a workflow: schema, sheets and model names are accepted.

`snakemake -n` on a clean copy; nothing runs. A config that names an unknown model or key fails here, not in a
user's first hour."""

from __future__ import annotations

import pytest

from conftest import REPO, copy_workflow, run_snakemake

CONFIGS = {
    "demo zoo": ["config/demo_zoo.yaml"],
    "demo zoo, cue absent in lineC": ["config/demo_zoo.yaml", "config/demo_cue/absent_in_lineC.yaml"],
    "demo zoo, cue reversed in lineC": ["config/demo_zoo.yaml", "config/demo_cue/reversed_in_lineC.yaml"],
    "demo zoo, cue reversed in lineD": ["config/demo_zoo.yaml", "config/demo_cue/reversed_in_lineD.yaml"],
}


def test_every_cue_overlay_is_planned_here():
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "config/demo_cue").glob("*.yaml")}
    assert shipped == {files[-1] for files in CONFIGS.values() if files[-1].startswith("config/demo_cue/")}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("configs"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_config_plans(workflow, name):
    proc = run_snakemake(workflow, "-n", "--configfile", *CONFIGS[name], timeout=300)
    planned = proc.stdout + proc.stderr
    assert "simulate_demo" in planned and "report" in planned
    for model in ("epinet_screen", "epinet_screen_gbm", "gbm_screen", "epinet_cdann", "epinet_cip"):
        assert f"model={model}" in planned, model
