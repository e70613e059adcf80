"""The pure core stays pure: design.md's one-way imports, checked on every run."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "plugin"
PURE = ("core", "decision")
FORBIDDEN = ("flask", "werkzeug", "requests", "urllib.request", "http", "sqlalchemy",
             "plugin.web", "plugin.adapters", "gunicorn")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the package path
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                module = ".".join([*parts, module] if module else parts)
            names.add(module)
    return names


PURE_MODULES = sorted(p for wing in PURE for p in (PACKAGE / wing).glob("*.py"))


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_modules_do_no_io_imports(path: Path) -> None:
    bad = {name for name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}; the core must not do I/O"


def test_only_fhir_models_imports_fhir_resources() -> None:
    offenders = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                 if any(n.startswith("fhir.resources") for n in _imports(p))
                 and p.name != "fhir_models.py"]
    assert offenders == []


def test_the_check_sees_the_core() -> None:
    assert len(PURE_MODULES) >= 8  # guards against the glob silently matching nothing


ADAPTER_MODULES = sorted((PACKAGE / "adapters").rglob("*.py"))


@pytest.mark.parametrize("path", ADAPTER_MODULES,
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_adapters_never_reach_up_into_the_web_layer(path: Path) -> None:
    """Imports run web -> adapters -> core: storage must work without Flask."""
    bad = {name for name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in ("flask", "werkzeug",
                                                                   "plugin.web"))}
    assert not bad and len(ADAPTER_MODULES) >= 4, f"{path.name} imports {sorted(bad)}"


CORE_MODULES = sorted((PACKAGE / "core").glob("*.py"))


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: f"core/{p.name}")
def test_the_core_never_imports_the_engine_or_the_use_cases(path: Path) -> None:
    """Arrows: record -> decision -> core. The core knows nothing of the engine above
    it, nor of the use cases that combine them."""
    bad = {name for name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in ("plugin.decision",
                                                                   "plugin.record"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


RECORD_MODULES = sorted((PACKAGE / "record").glob("*.py"))


@pytest.mark.parametrize("path", RECORD_MODULES, ids=lambda p: f"record/{p.name}")
def test_the_use_cases_never_reach_up_into_the_web_layer(path: Path) -> None:
    """Web, CLI and workers call the record's use cases, so they cannot need Flask."""
    bad = {name for name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in ("flask", "werkzeug",
                                                                   "plugin.web"))}
    assert not bad and len(RECORD_MODULES) >= 3, f"{path.name} imports {sorted(bad)}"


def test_the_engine_and_the_adapters_never_import_the_use_cases() -> None:
    offenders = [p.relative_to(PACKAGE).as_posix()
                 for wing in ("decision", "adapters") for p in (PACKAGE / wing).rglob("*.py")
                 if any(n == "plugin.record" or n.startswith("plugin.record.")
                        for n in _imports(p))]
    assert offenders == []
