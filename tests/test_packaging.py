"""Packaging: every third-party module the project imports is declared in pyproject.toml, requirements.lock
pins exactly what the declared requirements need, and the code runs without the optional extras."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("foundation", "assistant", "ingest", "indexes", "eval", "bench", "scripts", "tests")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extra: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in (project["optional-dependencies"][extra] if extra else project["dependencies"])]


def declared() -> set[str]:
    names = {canonical(r.name) for r in requirements()}
    for extra in PYPROJECT["project"]["optional-dependencies"]:
        names |= {canonical(r.name) for r in requirements(extra)}
    return names


def local_names() -> set[str]:
    """Top-level names that are the project's own: its folders and the modules inside them (tests/ and bench/
    put themselves on sys.path, so `import arxiv_server` is local)."""
    names = set(SOURCES)
    for folder in SOURCES:
        names |= {p.stem for p in (ROOT / folder).rglob("*.py")} | {p.name for p in (ROOT / folder).rglob("*") if p.is_dir()}
    return names


def imports() -> dict[str, str]:
    """Every absolute import in the project's code, inside functions too: module -> first place seen."""
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    found.setdefault(module, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@cache
def _top_level() -> dict[str, list[str]]:
    return packages_distributions()


@cache
def _files_of(dist: str) -> tuple[str, ...]:
    return tuple(str(f) for f in distribution(dist).files or ())


def providers(module: str) -> list[str]:
    """The installed distributions that provide `module`. A namespace package (llama_index) is shared by
    several: the one whose files hold the imported sub-package is the provider."""
    dists = _top_level().get(module.split(".")[0], [])
    parts = module.split(".")
    for depth in range(len(parts), 1, -1):
        if len(dists) < 2:
            break
        prefix = "/".join(parts[:depth])
        holding = [d for d in dists if any(f.startswith(prefix + "/") or f == prefix + ".py" for f in _files_of(d))]
        if holding:
            return holding
    return list(dists)


def test_every_imported_third_party_module_is_declared() -> None:
    local, wanted, problems = local_names(), declared(), []
    for module, where in sorted(imports().items()):
        top = module.split(".")[0]
        if top in local or top in sys.stdlib_module_names or top == "__future__":
            continue
        dists = providers(module)
        if not dists:
            problems.append(f"{where}: `import {module}`: no installed distribution provides it")
        elif not wanted & {canonical(d) for d in dists}:
            problems.append(f"{where}: `import {module}` comes from {' or '.join(dists)}, which pyproject.toml "
                            "declares neither in dependencies nor in an extra")
    assert not problems, "\n".join(problems)


def test_an_undeclared_import_is_caught(tmp_path, monkeypatch) -> None:
    """The check above can fail: a module importing a package only the lock pins (urllib3) is reported."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    for folder in SOURCES:
        (tmp_path / folder).mkdir()
    (tmp_path / "ingest" / "net.py").write_text("def get():\n    import urllib3.util\n")
    with_bad = [m for m, _ in imports().items() if not declared() & {canonical(d) for d in providers(m)}]
    assert with_bad == ["urllib3.util"]


def _closure(reqs: list[Requirement]) -> dict[str, str]:
    """Every distribution the requirements need, transitively (markers and extras evaluated), with its
    installed version."""
    need: dict[str, str] = {}
    expanded: set[tuple[str, str]] = set()  # (dist, extra) whose requirements are queued already
    todo = [(r, "") for r in reqs]
    while todo:
        req, parent_extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonical(req.name)
        dist = distribution(req.name)
        need[name] = dist.version
        for extra in {""} | req.extras:
            if (name, extra) not in expanded:
                expanded.add((name, extra))
                todo.extend((sub, extra) for sub in map(Requirement, dist.requires or ()))
    return need


# What every venv has and `pip freeze` leaves out (torch requires setuptools).
TOOLING = {"pip", "setuptools", "wheel"}


def test_the_lock_pins_exactly_what_the_declared_requirements_need() -> None:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version.strip()
    reqs = requirements() + [r for extra in PYPROJECT["project"]["optional-dependencies"] for r in requirements(extra)]
    try:
        need = _closure(reqs)
    except PackageNotFoundError as exc:
        raise AssertionError(f"{exc.name} is required but not installed: `make setup-app`") from exc
    missing = sorted(set(need) - set(pins) - TOOLING)
    unneeded = sorted(set(pins) - set(need))
    other = sorted(f"{n} {pins[n]} pinned, {need[n]} installed" for n in set(pins) & set(need)
                   if pins[n] != need[n].split("+")[0])  # torch's local label: 2.13.0+cpu is the 2.13.0 pinned
    assert not missing and not unneeded and not other, f"not pinned: {missing}; pinned, not needed: {unneeded}; {other}"


# Run in a fresh interpreter whose site-packages lacks the extras' own modules (as after `pip install .`).
WITHOUT_EXTRAS = r"""
import importlib, importlib.util, json, pkgutil, sys
failed = {}
for package in ("foundation", "ingest", "indexes", "assistant", "eval"):
    for info in pkgutil.walk_packages([package], prefix=package + ".", onerror=lambda name: None):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            failed[info.name] = str(exc)

import numpy as np
from foundation.config import Settings
from foundation.text import content_words
from indexes.library import build_extra_indexes, uninstalled_indexes
from indexes.raptor.clustering import reduce_dims

settings = Settings(home=sys.argv[1], indexes=["bm25", "colbert"])
missing = [m for m in ("colbert", "faiss", "textual", "matplotlib", "umap") if importlib.util.find_spec(m) is None]
print(json.dumps({"failed": failed, "missing": missing, "words": sorted(content_words("The heads were scaled using keys")),
                  "indexes": sorted(build_extra_indexes(settings)), "off": uninstalled_indexes(settings),
                  "reduced": list(reduce_dims(np.random.default_rng(0).normal(size=(30, 8)), dim=3).shape)}))
"""


def _extras_only() -> tuple[set[str], list[str]]:
    """The distributions only the extras install (no core requirement needs them) and their import names; for
    a namespace package shared with core dists, the extra dist's own sub-packages (llama_index.llms.openai_like)."""
    core = set(_closure(requirements()))
    dists: set[str] = set()
    for extra in PYPROJECT["project"]["optional-dependencies"]:
        if extra != "test":
            dists |= set(_closure(requirements(extra))) - core
    modules = set()
    for top, providing in _top_level().items():
        names = {canonical(d) for d in providing}
        if names & dists and not names & core:
            modules.add(top)
        elif names & dists:
            for dist in (d for d in providing if canonical(d) in dists):
                inits = {str(Path(f).parent) for f in _files_of(dist) if f.startswith(top + "/") and f.endswith("__init__.py")}
                modules |= {p.replace("/", ".") for p in inits if str(Path(p).parent) not in inits}
    return dists, sorted(modules)


def _site_without(dists: set[str], modules: list[str], view: Path) -> Path:
    """A copy of site-packages made of symlinks, without `modules` and the metadata of `dists`."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))

    def mirror(src: Path, dst: Path, prefix: str) -> None:
        dst.mkdir()
        for entry in src.iterdir():
            if entry.name.endswith((".dist-info", ".egg-info")):
                if canonical(entry.name.split("-")[0]) not in dists:
                    (dst / entry.name).symlink_to(entry)
                continue
            module = prefix + (entry.name if entry.is_dir() else entry.name.split(".")[0])
            if module in modules:
                continue
            if entry.is_dir() and any(m.startswith(module + ".") for m in modules):
                mirror(entry, dst / entry.name, module + ".")
            else:
                (dst / entry.name).symlink_to(entry)

    mirror(site, view, "")
    return view


def test_the_code_works_without_the_optional_extras(tmp_path) -> None:
    dists, modules = _extras_only()
    assert {"colbert", "faiss", "textual", "matplotlib", "umap"} <= set(modules), modules
    view = _site_without(dists, modules, tmp_path / "site-packages")
    done = subprocess.run([sys.executable, "-S", "-c", WITHOUT_EXTRAS, str(tmp_path / "home")], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{view}"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["missing"] == ["colbert", "faiss", "textual", "matplotlib", "umap"]
    # Only the TUI needs its extra to import; the rest imports what an extra adds when it runs.
    assert set(result["failed"]) <= {"assistant.tui"}, result["failed"]
    assert result["words"] == ["head", "key", "scale"]  # the answer path's stemmer and stopwords: core
    assert result["indexes"] == ["bm25"] and "pip install 'paper-assistant[colbert]'" in result["off"]["colbert"]
    assert result["reduced"] == [30, 3]  # RAPTOR's reduction falls back to PCA without umap-learn
