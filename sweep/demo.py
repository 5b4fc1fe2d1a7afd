"""``featherweight demo``: the whole pipeline offline on the built-in synthetic task.

Small teacher -> soft targets -> bootstrap data -> 24-trial distillation grid (3 archs x hash/char x 2 alphas x
bootstrap off/on) -> Optuna pruning search + quantization for the best students -> DuckDB -> Markdown/HTML report
with Pareto charts. The spec is ``sweeps/demo.yaml`` with ``storage`` pointed at ``--output``.
"""

from __future__ import annotations

import shlex
import sys
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


def featherweight_command() -> str:
    """How to run ``featherweight`` as printed: the bare name when it is on PATH as this very program (an activated
    environment), otherwise the path of the one next to this Python - relative to the working directory when it is
    under it (``.venv/bin/featherweight`` from the project root), else absolute."""
    import shutil

    here = Path(sys.executable).parent / "featherweight"
    on_path = shutil.which("featherweight")
    if on_path and (not here.is_file() or Path(on_path).resolve() == here.resolve()):
        return "featherweight"
    if not here.is_file():
        return f"{shlex.quote(sys.executable)} -m sweep.cli"
    try:  # shorter when the environment is under the working directory: .venv/bin/featherweight
        rel = str(here.absolute().relative_to(Path.cwd().absolute()))
        return shlex.quote(rel if "/" in rel else f"./{rel}")
    except ValueError:
        return shlex.quote(str(here))


def run_demo(output: Path, address: str | None, say: Callable[[str], None]) -> int:
    from analysis.report import build_report
    from analysis.views import open_store
    from sweep.callback import fmt_secs
    from sweep.runner import run_and_summarize
    from sweep.spec import validate

    t0 = time.time()

    def timed(msg: str) -> None:  # every line says how long the demo has been running, so the slow parts show
        say(f"[{fmt_secs(time.time() - t0)}] {msg}")

    import torch

    # the driver builds the small teacher and labels the data: one torch thread, as the trials use. With torch's
    # default (a thread per core) the teacher took 107 s instead of 17 s on 2 cores while one was busy elsewhere.
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
