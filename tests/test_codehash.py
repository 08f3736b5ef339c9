"""epiflow.codehash: the library modules a script imports (transitively) and the digest a rule's params carry."""

from pathlib import Path

from conftest import REPO
from epiflow.codehash import imported_modules, library_digest


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def small_package(root: Path) -> Path:
    """A script and a package: a, b (imported lazily, inside a function of a), sub.c (relative import from b) and
    d, which nothing imports."""
    write(root / "epiflow/__init__.py", "")
    write(root / "epiflow/a.py", "def f():\n    from epiflow import b\n    return b.g()\n")
    write(root / "epiflow/b.py", "from .sub.c import h\n\n\ndef g():\n    return h()\n")
    write(root / "epiflow/sub/__init__.py", "")
    write(root / "epiflow/sub/c.py", "import os\n\n\ndef h():\n    return os.sep\n")
    write(root / "epiflow/d.py", "X = 1\n")
    return write(root / "run_a.py", "import sys\nfrom epiflow.a import f\n\nf()\n")


def test_transitive_lazy_and_relative_imports_are_followed(tmp_path):
    script = small_package(tmp_path)
    found = [p.relative_to(tmp_path).as_posix() for p in imported_modules(script)]
    expected = ["__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py"]
    assert found == [f"epiflow/{name}" for name in expected]


def test_digest_moves_with_imported_code_only(tmp_path):
    script = small_package(tmp_path)
    before = library_digest(script)
    (tmp_path / "epiflow/d.py").write_text("X = 2\n")
    assert library_digest(script) == before
    (tmp_path / "epiflow/sub/c.py").write_text("import os\n\n\ndef h():\n    return os.pathsep\n")
    assert library_digest(script) != before


def test_real_scripts_import_what_they_run():
    scripts = REPO / "scripts"
    features = {p.name for p in imported_modules(scripts / "features_compute.py")}
    assert {"features.py", "track_bins.py", "io_bigwig.py"} <= features
    assert "crispr.py" not in features and "train.py" not in features
    assert "crispr.py" in {p.name for p in imported_modules(scripts / "crispr_benchmark.py")}
    train = {p.relative_to(scripts).as_posix() for p in imported_modules(scripts / "train_heldout.py")}
    assert "epiflow/models/trainer.py" in train  # models/ is reached through the package's own imports
