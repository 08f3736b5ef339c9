"""The per-stage conda envs stay in step with requirements.txt and with the rules.

`snakemake --use-conda` builds envs/*.yaml while `make run` uses requirements.txt: the two must pin the same
versions, or a result would depend on how the workflow was run.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import rule_directives

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
STAGES = [
    "simulate",
    "reference",
    "pairs",
    "tracks",
    "features",
    "train",
    "calibrate",
    "report",
    "crispr",
]

# conda package name -> pip name, where they differ (compared case-insensitively)
CONDA_TO_PIP = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "matplotlib-base": "matplotlib",
}

# what each stage imports beyond numpy/pandas/pyyaml (pip names)
STAGE_NEEDS = {
    "features": {"pybigwig", "pysam", "pyfaidx"},
    "tracks": {"pybigwig", "pysam"},
    "train": {"torch", "scikit-learn"},
    "train-cuda": {"torch", "scikit-learn"},
    "calibrate": {"scipy", "scikit-learn"},
    "report": {"matplotlib", "jinja2", "scikit-learn", "pybigwig", "pybigtools"},
    "crispr": {"pyliftover", "scipy", "scikit-learn", "matplotlib"},
}
LIBRARY_NEEDS = {"numpy", "pandas", "pyyaml"}

SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==?)\s*([^=\s]+)(?:=\S+)?$")


def read_requirements(path):
    """requirements.txt -> {lower-case pip name: version}; only `name==version` lines."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name} line {number}: {line!r} (expected name==version)"
        pins[name.strip().lower()] = version.strip()
    return pins


def read_env(path):
    """An env YAML -> (channels, {lower-case pip name: (conda spec, version)}) without python."""
    env = yaml.safe_load(path.read_text())
    packages = {}
    for spec in env["dependencies"]:
        assert isinstance(spec, str), f"{path.name}: {spec!r} (expected a conda spec, no pip section)"
        match = SPEC.match(spec.strip())
        assert match, f"{path.name}: {spec!r} (expected name==version)"
        name, _, version = match.groups()
        name = name.lower()
        if name == "python":
            continue
        packages.setdefault(CONDA_TO_PIP.get(name, name), []).append((spec, version))
    return env["channels"], packages


def env_files():
    return sorted(ENVS.glob("*.yaml"))


def test_every_stage_has_an_env():
    names = {path.stem for path in env_files()}
    missing = set(STAGES + ["train-cuda"]) - names
    assert not missing, f"envs/ lacks {sorted(missing)}"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_pins_match_requirements(path):
    pins = read_requirements(REPO / "requirements.txt")
    channels, packages = read_env(path)
    assert channels[:2] == ["conda-forge", "bioconda"], f"{path.name}: channels {channels}"
    assert "nodefaults" in channels, f"{path.name}: channels {channels} (expected nodefaults)"
    python = [s for s in yaml.safe_load(path.read_text())["dependencies"] if s.startswith("python")]
    assert python == ["python=3.11"], f"{path.name}: {python} (expected python=3.11)"
    for name, specs in packages.items():
        assert name in pins, f"{path.name}: {name} is not pinned in requirements.txt"
        for spec, version in specs:
            assert "==" in spec, f"{path.name}: {spec!r} (expected an exact == pin)"
            assert version == pins[name], f"{path.name}: {spec!r} but requirements.txt has {name}=={pins[name]}"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_has_what_its_stage_imports(path):
    _, packages = read_env(path)
    needed = LIBRARY_NEEDS | STAGE_NEEDS.get(path.stem, set())
    missing = needed - set(packages)
    assert not missing, f"{path.name}: lacks {sorted(missing)}"


def test_cuda_env_selects_the_gpu_build():
    _, packages = read_env(ENVS / "train-cuda.yaml")
    specs = [spec for spec, _ in packages["torch"]]
    assert any(spec.startswith("pytorch-gpu") for spec in specs), specs


def conda_directives(rule_file):
    """(line number, env path string) for each literal `conda:` env in a .smk file."""
    text = rule_file.read_text()
    found = []
    for match in re.finditer(r"^\s*conda:\s*(.*(?:\n\s*[\"'].*)?)", text, flags=re.MULTILINE):
        line = text.count("\n", 0, match.start()) + 1
        for literal in re.findall(r"[\"']([^\"']+\.ya?ml)[\"']", match.group(1)):
            found.append((line, literal))
    return found


def test_conda_directives_point_at_env_files():
    rules = sorted((REPO / "rules").glob("*.smk")) + sorted(REPO.glob("Snakefile"))
    if not rules:
        pytest.skip("no rules yet")
    for rule_file in rules:
        for line, literal in conda_directives(rule_file):
            # Snakemake resolves a relative conda: path against the file that holds the rule
            target = (rule_file.parent / literal).resolve()
            assert target.is_file(), f"{rule_file.name} line {line}: conda env {literal!r} does not exist"
            assert target.parent == ENVS, f"{rule_file.name} line {line}: {literal!r} is outside envs/"


def test_conda_directive_parser(tmp_path):
    rule_file = tmp_path / "x.smk"
    rule_file.write_text('rule a:\n    conda:\n        "../envs/train.yaml"\n    shell: "x"\n')
    assert conda_directives(rule_file) == [(2, "../envs/train.yaml")]
    rule_file.write_text("rule b:\n    conda: '../envs/report.yaml'\n")
    assert conda_directives(rule_file) == [(2, "../envs/report.yaml")]


# import name -> pip name, where they differ
IMPORT_TO_PIP = {"sklearn": "scikit-learn", "yaml": "pyyaml", "pybigwig": "pybigwig", "jinja2": "jinja2"}


def module_file(module, package_root):
    """The .py file of an epiflow module name, or None when it is not one."""
    parts = module.split(".")
    if parts[0] != "epiflow":
        return None
    path = package_root.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


# imports inside a function that the rules whose envs lack the package never call: (module, package) -> why
UNREACHED_LAZY_IMPORTS = {
    ("epiflow/diagnostics.py", "torch"): "sharpness of a torch model's weights: called by train_heldout only",
    ("epiflow/features.py", "pysam"): "sequence_codes reads the FASTA: called by the feature rules only",
}


def import_time_packages(script, scripts_root, unreached=UNREACHED_LAZY_IMPORTS):
    """Third-party top-level packages `script` may import: its imports and, through epiflow, theirs, at module
    level or inside a function (a lazy import runs when its function does), except the lazy imports listed in
    `unreached` ({(module path under scripts_root, package): why}: functions the rule never calls)."""
    import ast

    seen, third_party, todo = set(), set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        module = path.relative_to(scripts_root).as_posix()
        package = ".".join(path.relative_to(scripts_root).with_suffix("").parts[:-1])
        top_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import inside epiflow
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = module_file(name, scripts_root)
                top = name.split(".")[0]
                if target is not None:
                    todo.append(target)
                elif top in sys.stdlib_module_names | {"epiflow", "snakemake", ""}:
                    continue
                elif id(node) in top_level or (module, top) not in unreached:
                    third_party.add(top)
    return {IMPORT_TO_PIP.get(name.lower(), name.lower()) for name in third_party}


def test_rule_envs_hold_what_their_scripts_import():
    rule_files = sorted((REPO / "rules").glob("*.smk"))
    if not rule_files:
        pytest.skip("no rules yet")
    checked = 0
    for rule_file in rule_files:
        for rule, found in rule_directives(rule_file):
            conda, script = found["conda"], found["script"]
            if not conda or not script:
                continue
            _, packages = read_env((rule_file.parent / conda).resolve())
            needed = import_time_packages((rule_file.parent / script).resolve(), REPO / "scripts")
            missing = needed - set(packages)
            assert not missing, f"{rule_file.name} rule {rule}: {conda} lacks {sorted(missing)} ({script} imports them)"
            checked += 1
    assert checked, "no rule with both conda: and script: found"


def test_import_closure_follows_epiflow_and_lazy_imports(tmp_path):
    package = tmp_path / "epiflow"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "io.py").write_text("import logging\nimport pysam\nfrom .reader import read\n")
    (package / "reader.py").write_text(
        "import numpy as np\n\ndef read():\n    import torch\n\ndef plot():\n    import matplotlib\n"
    )
    script = tmp_path / "stage.py"
    script.write_text("import yaml\nfrom sklearn.metrics import auc\nfrom epiflow.io import read\n")
    expected = {"pyyaml", "scikit-learn", "pysam", "numpy", "torch", "matplotlib"}
    assert import_time_packages(script, tmp_path, {}) == expected
    # a lazy import listed as unreached is skipped; the same package imported at module level is not
    assert import_time_packages(script, tmp_path, {("epiflow/reader.py", "torch"): "never"}) == expected - {"torch"}
    assert import_time_packages(script, tmp_path, {("epiflow/io.py", "pysam"): "top level"}) == expected


def test_entry_scripts_start_the_job_log_before_the_library():
    """Every entry script calls runlog.start right after importing runlog, before any other epiflow import: a
    package missing from the rule's env then fails inside the job log, not only on the console."""
    scripts = [p for p in sorted((REPO / "scripts").glob("*.py")) if "runlog" in p.read_text()]
    assert len(scripts) >= 20
    for path in scripts:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        started = next(i for i, line in enumerate(lines) if line.startswith("runlog.start("))
        library = [i for i, line in enumerate(lines) if re.match(r"(from|import) epiflow", line)]
        assert lines[started - 1].startswith("from epiflow import runlog"), path.name
        assert [i for i in library if i < started] == [started - 1], path.name


def test_job_log_gets_what_c_libraries_write_to_stderr(tmp_path):
    """runlog.start points file descriptor 2 at the job log: htslib's own message on a malformed FASTA (written by C,
    not through sys.stderr) lands in the log with Python's stderr, and nothing reaches the console."""
    fasta = tmp_path / "uneven.fa"
    fasta.write_text(">chr1\nACGT\nACGTAC\nAC\n")  # lines of unequal length: htslib refuses to index it
    log = tmp_path / "job.log"
    job = (
        f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        f"from epiflow import runlog\nrunlog.start({str(log)!r})\n"
        "import pysam\n"
        f"try:\n    pysam.FastaFile({str(fasta)!r})\nexcept OSError:\n    pass\n"
        "print('python stderr line', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, check=True)
    text = log.read_text()
    assert "fai_build_core" in text and "python stderr line" in text
    assert done.stderr == ""
