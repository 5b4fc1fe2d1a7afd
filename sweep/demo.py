"""``featherweight demo``: the whole pipeline offline on the built-in synthetic task.

Small teacher -> soft targets -> bootstrap data -> 24-trial distillation grid (3 archs x hash/char x 2 alphas x
bootstrap off/on) -> Optuna pruning search + quantization for the skyline -> DuckDB -> Markdown/HTML report with
Pareto charts. The spec is ``sweeps/demo.yaml`` with ``storage`` pointed at ``--output``.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import yaml


def demo_spec_raw(output: Path) -> dict:
    raw = yaml.safe_load(files("sweeps").joinpath("demo.yaml").read_text())
    raw["storage"] = str(output)
    raw["database"] = str(output / "featherweight.duckdb")
    return raw


def run_demo(output: Path, address: str | None, say: Callable[[str], None]) -> int:
    from analysis.report import build_report
    from db.store import ExperimentStore
    from sweep.commands import _run
    from sweep.spec import validate

    t0 = time.time()
    output = output.expanduser().resolve()
    spec = validate(demo_spec_raw(output))
    _run(spec, address, verbose=False)
    report_dir = output / "report"
    files = build_report(ExperimentStore(spec.database, read_only=True), spec.name, report_dir)
    db = shlex.quote(str(spec.database))
    print()
    print(f"demo finished in {time.time() - t0:.0f}s")
    print(f"  database: {spec.database}")
    print(f"  report:   {files.html}  (and {files.markdown}, charts in {report_dir})")
    print("try:")
    print(f'  featherweight query --db {db} "SELECT arch, embedding, alpha, bootstrap, score, gzip_bytes'
          f' FROM trial_results WHERE stage = \'distill\' ORDER BY score DESC LIMIT 10"')  # fmt: skip
    print(f"  featherweight query --db {db} \"SELECT * FROM skyline WHERE task = 'synthetic'\"")
    print(f"  featherweight query --db {db} \"SELECT trial_id, parent_trial_id, pruning, quantization, score,"
          f' gzip_bytes FROM trial_results WHERE stage = \'compress\' ORDER BY gzip_bytes" --format csv')  # fmt: skip
    return 0
