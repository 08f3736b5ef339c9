"""House rules of the workflow's rules: names `stage_action` with the stage its rules/ file, the entry point
scripts/<rule>.py, the log under logs/<stage>/ and the benchmark file mirroring the log under logs/benchmarks/
(benchmarks/ holds only the research programs)."""

from pathlib import Path

import pytest
import yaml

from conftest import REPO, rule_directives

RULE_FILES = sorted((REPO / "rules").glob("*.smk"))
RULES = [(path, name, found) for path in RULE_FILES for name, found in rule_directives(path)]


def rule_id(item):
    return item[1]


def test_rules_found():
    assert len(RULES) >= 10, [name for _, name, _ in RULES]


@pytest.mark.parametrize("item", RULES, ids=rule_id)
def test_rule_is_named_by_its_stage(item):
    path, name, _ = item
    stage = path.stem
    assert name.startswith(f"{stage}_"), f"{path.name}: rule {name} (expected {stage}_<action>, the stage first)"


@pytest.mark.parametrize("item", RULES, ids=rule_id)
def test_rule_script_is_named_by_the_rule(item):
    path, name, found = item
    if found["script"]:
        assert found["script"] == f"../scripts/{name}.py", f"{path.name}: rule {name} runs {found['script']}"
        assert (path.parent / found["script"]).is_file(), f"{path.name}: rule {name}: {found['script']} missing"


@pytest.mark.parametrize("item", RULES, ids=rule_id)
def test_rule_log_and_benchmark_mirror_each_other(item):
    path, name, found = item
    log, benchmark = found["log"], found["benchmark"]
    assert log and log.startswith(f"logs/{path.stem}/") and log.endswith(".log"), (
        f"{path.name}: rule {name} log {log!r} (expected logs/{path.stem}/....log)"
    )
    expected = "logs/benchmarks/" + str(Path(log).relative_to("logs").with_suffix(".tsv"))
    assert benchmark == expected, f"{path.name}: rule {name} benchmark {benchmark!r} (expected {expected!r})"


def test_benchmarks_folder_holds_only_programs():
    assert not [p.name for p in (REPO / "benchmarks").iterdir() if p.is_dir() and p.name != "__pycache__"], (
        "benchmarks/ holds the research programs only; rule benchmark files go to logs/benchmarks/"
    )


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_cluster_profiles_give_every_rule_the_same_resources():
    """profiles/generic and profiles/slurm-gpu say they are profiles/slurm for another submitter or GPU training:
    the same default and per-rule memory and time; only slurm-gpu lets the rules ask for GPUs (no gpu key), and no
    profile sends every job of a rule to one partition (slurm-gpu picks it per job from its partitions.yaml)."""
    slurm, generic, gpu = (
        read_yaml(REPO / "profiles" / name / "config.yaml") for name in ("slurm", "generic", "slurm-gpu")
    )
    unknown = set(slurm["set-resources"]) - {name for _, name, _ in RULES}
    assert not unknown, unknown
    assert generic["set-resources"] == slurm["set-resources"]
    assert generic["default-resources"] == gpu["default-resources"] == slurm["default-resources"]
    without_gpu = {rule: {k: v for k, v in res.items() if k != "gpu"} for rule, res in slurm["set-resources"].items()}
    assert gpu["set-resources"] == without_gpu
    assert slurm["set-resources"]["train_heldout"]["gpu"] == slurm["set-resources"]["predict_fit"]["gpu"] == 0
    partitions = read_yaml(REPO / "profiles/slurm-gpu" / gpu["slurm-partition-config"])["partitions"]
    assert {name: limits["max_gpu"] > 0 for name, limits in partitions.items()} == {"debug": False, "gpu": True}
    for config in (slurm, generic, gpu):
        assert not any("slurm_partition" in res for res in config["set-resources"].values())


@pytest.mark.parametrize("item", RULES, ids=rule_id)
def test_rule_params_carry_the_digest_of_its_library_code(item):
    """Every script rule passes library("<its script>") (rules/common.smk), so an edit to library code it imports
    reruns it; download_source alone does not: its output is checked by its sha256, not made by the code."""
    path, name, found = item
    if not found["script"] or name == "download_source":
        return
    text = path.read_text()
    body = text[text.index(f"rule {name}:") :].split("\nrule ")[0]
    entry = f'library=library("{name}.py")'
    assert entry in body, f"{path.name}: rule {name}: params lack {entry}"
