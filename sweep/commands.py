"""``featherweight sweep run|resume|status|validate`` and ``featherweight demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run, resume, inspect or validate a sweep", description=__doc__)
    ssub = p.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)

    r = ssub.add_parser("run", help="run the sweep a YAML spec describes")
    r.add_argument("spec", help="sweep spec (YAML), e.g. sweeps/demo.yaml")
    r.add_argument("--address", default=None, help="join an existing Ray cluster (e.g. auto or ray://host:10001)")
    r.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    r.set_defaults(func=run_cmd)

    s = ssub.add_parser("resume", help="continue a sweep after a crash or Ctrl-C (finished trials are kept)")
    s.add_argument("name", help="sweep name")
    s.add_argument("--storage", default="runs", help="the spec's storage directory (default: runs)")
    s.add_argument("--address", default=None)
    s.add_argument("--verbose", action="store_true")
    s.set_defaults(func=resume_cmd)

    st = ssub.add_parser("status", help="trial counts and timing of a sweep")
    st.add_argument("name")
    st.add_argument("--storage", default="runs")
    st.add_argument("--db", default=None, help="database path (default: the spec's)")
    st.set_defaults(func=status_cmd)

    v = ssub.add_parser("validate", help="check a spec without running anything")
    v.add_argument("spec", nargs="+")
    v.set_defaults(func=validate_cmd)

    d = sub.add_parser("demo", help="the whole pipeline offline on the built-in synthetic task (a few minutes)")
    d.add_argument("--output", default="runs/demo", help="where the demo's database, runs and report go")
    d.add_argument("--address", default=None)
    d.set_defaults(func=demo_cmd)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _save_spec_copy(spec) -> None:
    import yaml

    d = spec.storage / spec.name
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / ".spec.yaml.tmp"
    tmp.write_text(yaml.safe_dump(spec.raw, sort_keys=False))
    tmp.replace(d / "spec.yaml")


def _run(spec, address: str | None, verbose: bool) -> int:
    from sweep.runner import run_sweep

    _save_spec_copy(spec)
    out = run_sweep(spec, address=address, say=_say, verbose=verbose)
    ms = sorted(out.db_write_ms)
    write = f", db write median {ms[len(ms) // 2]:.1f} ms" if ms else ""
    _say(
        f"sweep {out.name} done in {out.seconds:.0f}s: {out.distill_ran} distillation + {out.compress_ran} compression"
        f" trials run, {out.failed} failed{write}"
    )
    _say(f"database: {out.database}")
    return 0


def run_cmd(args: argparse.Namespace) -> int:
    from sweep.spec import load_spec

    return _run(load_spec(args.spec), args.address, args.verbose)


def _stored_spec(name: str, storage: str):
    from sweep.spec import SpecError, load_spec

    path = Path(storage) / name / "spec.yaml"
    if not path.is_file():
        raise SpecError(f"no sweep {name!r} under {storage}/ (expected {path}); pass --storage DIR")
    return load_spec(path)


def resume_cmd(args: argparse.Namespace) -> int:
    return _run(_stored_spec(args.name, args.storage), args.address, args.verbose)


def status_cmd(args: argparse.Namespace) -> int:
    from db.store import ExperimentStore

    db = args.db
    if db is None:
        db = _stored_spec(args.name, args.storage).database
    if not Path(db).is_file():
        raise FileNotFoundError(f"{db}: database not found")
    st = ExperimentStore(db, read_only=True).sweep_status(args.name)
    for k, v in st.items():
        print(f"{k:>16}: {v}")
    return 0


def validate_cmd(args: argparse.Namespace) -> int:
    from sweep.spec import load_spec

    for path in args.spec:
        spec = load_spec(path)
        n = len(spec.distill_trials())
        print(f"{path}: ok ({spec.name}: {len(spec.tasks)} task(s), {n} distillation trials"
              f"{', compression stage' if spec.compress else ''})")  # fmt: skip
    return 0


def demo_cmd(args: argparse.Namespace) -> int:
    from sweep.demo import run_demo

    return run_demo(Path(args.output), args.address, _say)
