"""Which epiflow modules a rule's script runs, and one digest of their content.

Snakemake reruns a `script:` rule when the script is newer than its outputs, but it does not see the library modules
the script imports. Each rule passes `library_digest(its script)` as a param, so editing a module a rule imports
(directly or through other epiflow modules, lazy imports inside functions included) reruns that rule and what
depends on it, and editing any other module does not.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "epiflow"


def _module_file(root: Path, name: str) -> Path | None:
    """The file of dotted module `name` under root (the directory holding the package), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(root: Path, path: Path) -> str:
    """Dotted package that a module file's relative imports resolve against."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


def _imported_names(root: Path, path: Path) -> frozenset[str]:
    """Dotted names of the package's modules (and their parent packages) that one file imports anywhere in it."""
    return _parsed_names(root, path, path.read_bytes())


@cache
def _parsed_names(root: Path, path: Path, source: bytes) -> frozenset[str]:
    """_imported_names of one file's content, parsed once per content (every rule's digest walks the shared
    modules again; keyed by the bytes, not the mtime, so an edit within the mtime's resolution is not missed)."""
    names = set()
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(root, path).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    expanded = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == PACKAGE:
            expanded.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(expanded)


def imported_modules(script: str | Path) -> list[Path]:
    """The package's module files that `script` imports, transitively, sorted; the script itself not included."""
    script = Path(script)
    root = script.parent
    seen: dict[str, Path] = {}
    todo = [script]
    while todo:
        for name in _imported_names(root, todo.pop()):
            if name not in seen and (path := _module_file(root, name)) is not None:
                seen[name] = path
                todo.append(path)
    return sorted(set(seen.values()))


def library_digest(script: str | Path) -> str:
    """SHA-256 (first 16 hex digits) over the relative paths and contents of the modules `script` imports."""
    script = Path(script)
    digest = hashlib.sha256()
    for path in imported_modules(script):
        digest.update(path.relative_to(script.parent).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
