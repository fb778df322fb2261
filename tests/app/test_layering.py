"""The layers' rules, read from the sources: the engine (``gpu/``) never imports Qt, and widgets never call the
engine. Widgets may use the engine's error types, paths and constants (and build a ``QuantizeConfig``); what reads
files or models goes through the app's state and worker modules (``app/*.py``), which tests drive without widgets."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What a widget may import from the engine: errors, paths, constants, the quantizer's settings type.
WIDGETS_MAY_IMPORT = {"gpu.errors", "gpu.paths", "gpu.lora.metadata", "gpu.quantize_defaults", "gpu.quantizer"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_widgets_do_not_call_the_engine():
    found = {f"{path.name}: {name}" for path in sorted((ROOT / "app" / "widgets").glob("*.py"))
             for name in _imports(path) if name.split(".")[0] == "gpu" and name not in WIDGETS_MAY_IMPORT}  # fmt: skip
    assert not found, f"widgets importing the engine (move the call into an app/ state or worker module): {found}"


def test_the_engine_never_imports_qt():
    found = {f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / "gpu").rglob("*.py"))
             for name in _imports(path) if name.split(".")[0] in ("PySide6", "app")}  # fmt: skip
    assert not found, f"the engine importing Qt or the app: {found}"
