"""``featherweight sweep run|resume|status|validate`` and ``featherweight demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from db.limits import add_limit_args, limits_from_args
from featherweight_core.errors import UserError
from sweep.stopping import DEFAULT_STORAGE  # where resume / status look without --storage (and what they print)

ADDRESS_HELP = "join an existing Ray cluster: HOST:PORT of its head, or auto (default: start a local Ray)"


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run, resume, inspect or validate a sweep", description=__doc__)
    ssub = p.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)

    r = ssub.add_parser("run", help="run the sweep a YAML spec describes")
    r.add_argument("spec", help="sweep spec (YAML), e.g. sweeps/demo.yaml")
    r.add_argument(
        "--address",
        default=None,
        help="join an existing Ray cluster: HOST:PORT of its head, or auto (default: start a local Ray)",
    )
    r.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    r.set_defaults(func=run_cmd)

    where = "the sweep is found from --db (its stored spec), else <storage>/NAME/spec.yaml, else the default database"
    s = ssub.add_parser(
        "resume",
        help="continue a sweep after a crash or Ctrl-C (finished trials are kept)",
        description=f"Continue a sweep; {where}.",
    )
    s.add_argument("name", help="sweep name")
    _locate_args(s)
    s.add_argument("--address", default=None, help=ADDRESS_HELP)
    s.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    s.set_defaults(func=resume_cmd)

    st = ssub.add_parser(
        "status", help="trial counts, status and timing of a sweep", description=f"Show a sweep's status; {where}."
    )
    st.add_argument("name", help="sweep name")
    _locate_args(st)
    add_limit_args(st)
    st.set_defaults(func=status_cmd)

    v = ssub.add_parser("validate", help="check a spec without running anything")
    v.add_argument("spec", nargs="+", help="sweep spec(s) (YAML)")
    v.set_defaults(func=validate_cmd)

    d = sub.add_parser(
        "demo", help="the whole pipeline offline on the built-in synthetic task (2-3 minutes on 2 CPU cores)"
    )
    d.add_argument("--output", default="runs/demo", help="where the demo's database, runs and report go")
    d.add_argument("--address", default=None, help=ADDRESS_HELP)
    d.set_defaults(func=demo_cmd)


def _locate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=None, help=f"the spec's storage directory (default: {DEFAULT_STORAGE})")
    p.add_argument("--db", default=None, help="the sweep's experiment database (default: found as described above)")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet_libraries() -> None:
    """A sweep prints its own progress lines: Optuna's INFO lines ("A new study created ...") stay out of it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_cmd(args: argparse.Namespace) -> int:
    # deferred: loads ray and duckdb (keeps --help fast)
    from sweep.runner import run_and_summarize
    from sweep.spec import load_spec

    _quiet_libraries()
    return run_and_summarize(load_spec(args.spec), args.address, _say, args.verbose)


def locate_sweep(name: str, storage: str | None, db: str | None):
    """``(spec or None, database path)`` of sweep ``name``: from ``db`` (the spec stored in it), else
    ``<storage>/<name>/spec.yaml``, else the default database. UserError listing what was tried."""
    # deferred: loads duckdb and numpy (keeps --help fast)
    from db.store import default_db_path
    from sweep.spec import check_sweep_name, load_spec

    check_sweep_name(name, "NAME")  # as a spec's name: <storage>/NAME stays under the storage
    tried = []
    if db is None:
        path = Path(storage or DEFAULT_STORAGE) / name / "spec.yaml"
        if path.is_file():
            spec = load_spec(path)
            return spec, spec.database
        tried.append(str(path))
        if storage is None:  # e.g. `featherweight demo --output runs/demo` keeps its sweep in runs/demo/demo
            nested = sorted(Path(DEFAULT_STORAGE).glob(f"*/{name}/spec.yaml"))
            if len(nested) == 1:
                spec = load_spec(nested[0])
                return spec, spec.database
        if storage is not None:
            raise UserError(f"no sweep {name!r} under {storage}/ (expected {path}); pass --db DATABASE")
        db = default_db_path()
    db = Path(db)
    if not db.is_file():
        tried.append(str(db))
        raise UserError(f"no sweep {name!r} found (tried {' and '.join(tried)}); pass --db DATABASE or --storage DIR")
    return None, db


def _spec_from_db(name: str, db: Path):
    # deferred: loads duckdb and numpy (keeps --help fast)
    from analysis.views import open_store
    from sweep.spec import validate

    raw = open_store(db, read_only=True).sweep_spec(name)
    return validate(raw, path=None)


def resume_cmd(args: argparse.Namespace) -> int:
    spec, db = locate_sweep(args.name, args.storage, args.db)
    if spec is None:
        spec = _spec_from_db(args.name, db)
    # deferred: loads ray and duckdb (keeps --help fast)
    from sweep.runner import run_and_summarize

    _quiet_libraries()
    return run_and_summarize(spec, args.address, _say, args.verbose)


def status_cmd(args: argparse.Namespace) -> int:
    # deferred: loads duckdb (keeps --help fast)
    from analysis.views import open_store

    _, db = locate_sweep(args.name, args.storage, args.db)
    st = open_store(db, read_only=True, limits=limits_from_args(args)).sweep_status(args.name)
    for k, v in st.items():
        if v is not None:
            print(f"{k:>16}: {v}")
    return 0


def validate_cmd(args: argparse.Namespace) -> int:
    # deferred: loads numpy and yaml (keeps --help fast)
    from sweep.spec import load_spec
    from sweep.teacher_fit import check_grid_against_teacher_configs

    for path in args.spec:
        spec = load_spec(path)
        check_grid_against_teacher_configs(spec)  # a teacher-compression grid that cannot fit the teacher
        n = len(spec.distill_trials())
        tc = spec.teacher_compression_size()
        print(
            f"{path}: ok ({spec.name}: {len(spec.tasks)} task(s), {n} distillation trials"
            f"{', compression stage' if spec.compress else ''}"
            f"{f', {tc} teacher compression trials' if tc else ''})"
        )
    return 0


def demo_cmd(args: argparse.Namespace) -> int:
    # deferred: loads yaml (keeps --help fast)
    from sweep.demo import run_demo

    _quiet_libraries()
    return run_demo(Path(args.output), args.address, _say)
