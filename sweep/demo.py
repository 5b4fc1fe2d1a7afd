"""``featherweight demo``: the whole pipeline offline on the built-in synthetic task.

Small teacher -> soft targets -> bootstrap data -> 24-trial distillation grid (3 archs x hash/char x 2 alphas x
bootstrap off/on) -> Optuna pruning search + quantization for the best students -> DuckDB -> Markdown/HTML report
with Pareto charts. The spec is ``sweeps/demo.yaml`` with ``storage`` pointed at ``--output``.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import yaml

from analysis.report import build_report
from sweep.stopping import featherweight_command


def demo_spec_raw(output: Path) -> dict:
    raw = yaml.safe_load(files("sweeps").joinpath("demo.yaml").read_text())
    raw["storage"] = str(output)
    raw["database"] = str(output / "featherweight.duckdb")
    return raw


def run_demo(output: Path, address: str | None, say: Callable[[str], None]) -> int:
    # deferred: loads ray and duckdb only when called (importing this module does not)
    from analysis.views import open_store
    from sweep.callback import fmt_secs
    from sweep.runner import run_and_summarize
    from sweep.spec import validate

    t0 = time.time()

    def timed(msg: str) -> None:  # every line says how long the demo has been running, so the slow parts show
        say(f"[{fmt_secs(time.time() - t0)}] {msg}")

    import torch

    # the driver builds the small teacher, and the soft_targets stage labels with the driver's torch threads: one, as
    # the trials use. With torch's default (a thread per core) the teacher took 107 s instead of 17 s on 2 cores while
    # one was busy elsewhere.
    torch.set_num_threads(1)
    output = output.expanduser().resolve()
    spec = validate(demo_spec_raw(output))
    rc = run_and_summarize(spec, address, timed)
    if rc:
        return rc
    report_dir = output / "report"
    timed(f"writing the report (Markdown, HTML, Pareto charts) in {report_dir}")
    files = build_report(open_store(spec.database, read_only=True), spec.name, report_dir)
    fw = featherweight_command()
    db = shlex.quote(str(spec.database))
    print()
    print(f"demo finished in {time.time() - t0:.0f}s")
    print(f"  database: {spec.database}")
    print(f"  report:   {files.html}  (and {files.markdown}, charts in {report_dir})")
    print("try:")
    print(f"  {fw} sweep status demo --db {db}")
    print(
        f'  {fw} query --db {db} "SELECT arch, embedding, alpha, bootstrap, score, gzip_bytes'
        f" FROM trial_results WHERE stage = 'distill' ORDER BY score DESC LIMIT 10\""
    )
    print(f"  {fw} query --db {db} \"SELECT * FROM skyline WHERE task = 'synthetic'\"")
    print(
        f'  {fw} query --db {db} "SELECT trial_id, parent_trial_id, pruning, quantization, score,'
        f" gzip_bytes FROM trial_results WHERE stage = 'compress' ORDER BY gzip_bytes\" --format csv"
    )
    return 0
