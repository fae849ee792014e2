"""The pack's structural rules, checked on its source: core/ never imports ComfyUI, functions stay short, settings
objects instead of long parameter lists."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST_MODULES = ("comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "nodes", "server",
                "execution", "latent_preview")
MAX_LINES, MAX_CORE_PARAMETERS = 60, 10


def core_modules() -> list[str]:
    return sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for path in (ROOT / "core").rglob("*.py"))


def functions(folder: str):
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(ROOT), node


def test_no_core_module_imports_the_host_or_the_nodes():
    """Statically: no import of ComfyUI's modules, and no relative import that leaves core/ (the pack's nodes)."""
    found = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        depth = len(path.relative_to(ROOT / "core").parts)  # core/x.py: 1, core/backends/y.py: 2 (levels inside)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > depth:  # e.g. "from ..nodes import" in core/x.py
                    found.append(f"{path.relative_to(ROOT)}: relative import out of core/ (level {node.level})")
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            found += [f"{path.relative_to(ROOT)}: imports {name}" for name in names
                      if name.split(".")[0] in HOST_MODULES]
    assert found == []


def test_every_core_module_imports_without_comfyui():
    """Dynamically: each core module imports in a fresh interpreter where ComfyUI's modules cannot be imported."""
    blocker = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HOST_MODULES!r}:
            raise ImportError("core/ imported " + name)
sys.meta_path.insert(0, Refuse())
import importlib
for module in {core_modules()!r}:
    importlib.import_module(module)
"""
    run = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(core_modules()) >= 15


@pytest.mark.parametrize("folder", ["core", "nodes"])
def test_functions_are_short(folder):
    long = [f"{path}:{node.lineno} {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for path, node in functions(folder) if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []


def test_core_functions_take_settings_objects_not_long_parameter_lists():
    def count(arguments: ast.arguments) -> int:
        names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
        return len([n for n in names if n not in ("self", "cls")]) + bool(arguments.vararg) + bool(arguments.kwarg)

    wide = [f"{path}:{node.lineno} {node.name} takes {count(node.args)}" for path, node in functions("core")
            if count(node.args) > MAX_CORE_PARAMETERS]
    assert wide == []


def test_one_module_imports_comfyuis_node_api_at_one_numbered_version():
    """nodes/host_api.py alone imports comfy_api, and from a numbered version (never ``comfy_api.latest``)."""
    importers = {}
    for path in sorted(ROOT.rglob("*.py")):
        if any(part.startswith(".") or part == "node_modules" for part in path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for module in modules:
                if module.split(".")[0] == "comfy_api":
                    importers.setdefault(str(path.relative_to(ROOT)), []).append(module)
    assert list(importers) == ["nodes/host_api.py"], importers
    (module,) = importers["nodes/host_api.py"]
    assert module.startswith("comfy_api.v") and module != "comfy_api.latest", module
