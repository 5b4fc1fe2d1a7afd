"""The core library stays free of orchestration: importing it (every submodule) loads no ray/duckdb/optuna/altair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("ray", "duckdb", "optuna", "altair")

WALK = """
import importlib, json, pkgutil, sys
import featherweight_core
names = ["featherweight_core"]
for info in pkgutil.walk_packages(featherweight_core.__path__, "featherweight_core."):
    importlib.import_module(info.name)
    names.append(info.name)
forbidden = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"modules": names, "forbidden": forbidden}))
"""


def _run(code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_and_all_submodules_import_no_orchestration():
    result = _run(WALK % (FORBIDDEN,))
    # the walk really covered the package (these exist since the core library landed)
    for name in (
        "data.tasks",
        "data.loading",
        "data.synthetic",
        "data.encoders",
        "data.batching",
        "students.models",
        "students.distill",
        "students.measure",
        "compression.prune",
        "teacher.finetune",
        "teacher.softtargets",
        "pipeline.prepare",
        "pipeline.run",
        "pipeline.checkpoint",
        "export.exporter",
        "cli.distill",
        "cli.analyze",
    ):
        assert f"featherweight_core.{name}" in result["modules"]
    assert result["forbidden"] == [], f"featherweight_core imports {result['forbidden']}"


def test_cli_parser_builds_without_heavy_imports():
    """`featherweight --help` builds every command's parser; the core commands must not pull in orchestration."""
    code = (
        "import json, sys\n"
        "import featherweight_core.cli.distill as d, featherweight_core.cli.analyze as a, argparse\n"
        "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
        "d.add_parser(sub); a.add_parser(sub)\n"
        f"print(json.dumps({{'forbidden': sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}),"
        " 'torch': 'torch' in sys.modules}))\n"
    )
    result = _run(code)
    assert result["forbidden"] == []


# ---- the dependency rule between packages, and no import cycles within them (docs/architecture.md) ----------------

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("featherweight_core", "trainables", "db", "analysis", "sweep")
# package -> the project packages it may import (featherweight_core: only its own modules)
ALLOWED = {
    "featherweight_core": {"featherweight_core"},
    "trainables": {"trainables", "featherweight_core"},
    "db": {"db", "featherweight_core"},
    "analysis": {"analysis", "db", "featherweight_core"},
    "sweep": {"sweep", "trainables", "analysis", "db", "featherweight_core"},
}


def _import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports (at any level, function-local imports included)."""
    import ast

    modules = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def test_packages_import_only_downwards():
    bad = [
        (m, d) for m, deps in _import_graph().items() for d in deps if d.split(".")[0] not in ALLOWED[m.split(".")[0]]
    ]
    assert bad == [], f"imports against the dependency rule: {bad}"


def test_no_import_cycles():
    graph = _import_graph()
    # a package __init__ that only re-exports is not a cycle with its own submodules
    graph = {
        m: {d for d in deps if not m.startswith(d + ".") and not d.startswith(m + ".")} for m, deps in graph.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d) :] + [d] if d in stack else [m, d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == [], f"import cycles: {cycles}"


# ---- the layers inside featherweight_core ------------------------------------------------------------------------
#
# Its subpackages are layers, each importing only the ones listed before it (and itself):
#   shared top-level modules (errors, atomic, readable, vocab: import only each other)
#   data        task definitions, loaders, encoders, batches, word vectors
#   students    the student models, their measurements, the distillation loop
#   compression pruning and quantization of students
#   teacher     teachers: loading, fine-tuning, predicting, soft targets, augmentation, teacher compression
#   pipeline    the steps of a run: prepare inputs, distill and checkpoint, compress a saved student
#   export      deployable artefacts of students and teachers
#   cli         the single-run commands
# So `data` imports neither `students` nor `teacher`, a teacher never imports the pipeline, and nothing imports the CLI.
CORE_LAYERS = ("", "data", "students", "compression", "teacher", "pipeline", "export", "cli")


def _core_layer(module: str) -> int:
    parts = module.split(".")
    sub = parts[1] if len(parts) > 2 else ""  # featherweight_core.<package>.<module>; top-level modules: ""
    assert sub in CORE_LAYERS, f"{module}: a featherweight_core subpackage missing from CORE_LAYERS"
    return CORE_LAYERS.index(sub)


def test_core_subpackages_import_only_downwards():
    graph = _import_graph()
    core = {m for m in graph if m.split(".")[0] == "featherweight_core"}
    # every subpackage on disk is a layer (a new one must be placed in CORE_LAYERS)
    on_disk = {p.name for p in (ROOT / "featherweight_core").iterdir() if (p / "__init__.py").is_file()}
    assert on_disk == set(CORE_LAYERS) - {""}
    bad = []
    for m in sorted(core):
        for d in graph[m]:
            if d.split(".")[0] != "featherweight_core" or d in ("featherweight_core",) or d.count(".") < 1:
                continue
            if (ROOT / Path(*d.split("."))).is_dir():
                continue  # a package itself (its __init__ holds only a docstring)
            if _core_layer(d) > _core_layer(m):
                bad.append((m, d))
    assert bad == [], f"featherweight_core modules importing a layer above their own: {bad}"
