"""``featherweight export``: a trial's saved model (a student or a compressed teacher), or a model file or directory,
as a deployable ONNX or TorchScript artefact checked against the PyTorch model (featherweight_core.export).

The trial is looked up in the experiment database, opened read-only: its checkpoint, its task and the sizes
recorded for it (params, disk_bytes, gzip_bytes), which the checkpoint must still have. The command lives in
``analysis`` because it reads the database.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from db.errors import StoreError
from db.limits import add_limit_args, limits_from_args
from featherweight_core.atomic import checked_output_dir
from featherweight_core.cli.common import output_parent, positive_int
from featherweight_core.errors import ConfigError, OutputError, UserError

DESCRIPTION = """Write a trial's model (a distilled or compressed student, or a compressed teacher) or a model you name
with --model (a student.pt / compressed.pt file, a fine-tuned teacher directory, a Theseus or BERT-Vision output
directory) as a deployable artefact: ONNX where the model exports (checked with onnxruntime), otherwise TorchScript.
Before writing, the checkpoint is measured again and must have the sizes recorded for the trial; after exporting, the
artefact's predictions must equal the PyTorch model's on every dev example of the task (an int8 student's int8
ONNX artefact: on all but --max-disagree of them, counted). The output directory holds
the model file, featherweight_export.json (inputs, labels, encoding) and what turns text into inputs without
featherweight: the tokenizer files (transformers) or a standalone encode.py (students). Nothing is written when a
check fails."""
EPILOG = """Examples:
  featherweight export d-1a2b3c4d5e --db runs/featherweight.duckdb --output exported/best
  featherweight export --model runs/compressed/compressed.pt --output exported/small --format torchscript
How to run an artefact without featherweight installed: docs/export.md"""


FORMATS = (
    "auto",
    "onnx",
    "torchscript",
)  # featherweight_core.export.exporter.FORMATS, without importing torch for --help


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a trial's model as a checked ONNX / TorchScript artefact",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "trial_id",
        nargs="?",
        default=None,
        metavar="TRIAL_ID",
        help="the trial whose model to export (d-..., c-..., t-...); or give --model instead",
    )
    p.add_argument(
        "--db", default=None, help="experiment database (default: $FEATHERWEIGHT_DB or runs/featherweight.duckdb)"
    )
    p.add_argument(
        "--sweep",
        default=None,
        help="the sweep the trial belongs to, when several sweeps hold the same trial id (default: the"
        " only one that does)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="export this checkpoint file or model directory instead of a trial's (no recorded sizes to"
        " compare then; default: none)",
    )
    p.add_argument("--output", "-o", required=True, help="directory to write the artefact into")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="auto: ONNX when it exports and matches, else TorchScript; onnx / torchscript: only that",
    )
    p.add_argument(
        "--data",
        default=None,
        help="where the task's data is now, when it is no longer where the model recorded it (a local"
        " GLUE dir, a custom CSV/TSV file or directory, hub, hf:OWNER/NAME; default: as recorded)",
    )
    p.add_argument(
        "--bpemb-dir",
        default=None,
        help="bpemb cache dir with en/en.wiki.bpe.vs*.{model,d*.w2v.bin} (bpe students; default: bpemb's own cache)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads for the export and its check (default 1: the checks run small batches,"
        " often one example, where more threads mostly wait on each other)",
    )
    p.add_argument(
        "--speed",
        action="store_true",
        help="also time the model on the CPU with --threads threads, in PyTorch and as the ONNX artefact in ONNX"
        " Runtime, interleaved: batch-1 latency (median, 90th percentile) and batch-256 throughput",
    )
    p.add_argument(
        "--teacher",
        default=None,
        help="with --speed: a teacher directory to time beside the model (PyTorch, same threads) for the speed-up"
        " (default: none)",
    )
    p.add_argument(
        "--max-disagree",
        type=float,
        default=None,
        help="int8 students: the fraction of dev examples on which the int8 ONNX artefact's prediction may differ"
        " from the PyTorch int8 model's (default 0.01; two int8 kernels round differently)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--json", action="store_true", help="print the export report as one JSON object")
    add_limit_args(p)
    p.set_defaults(func=run)


def resolve_trial(db: str | None, trial_id: str, sweep: str | None = None, limits=None) -> dict:
    """The trial's row (featherweight's db.reads.trial_artefacts) from the database opened read-only; a trial
    that is not there, is in several sweeps, did not finish, or has no checkpoint on disk is a StoreError."""
    # imported here: both load duckdb, which building the parser (`featherweight --help`) does not need
    from analysis.views import open_store
    from db import reads

    store = open_store(db, read_only=True, limits=limits)
    with store.connect() as con:
        rows = reads.trial_artefacts(con, trial_id, sweep)
    where = f" in sweep {sweep!r}" if sweep else ""
    if not rows:
        raise StoreError(f"trial {trial_id!r} not found{where} in {store.path}")
    if len(rows) > 1:
        raise StoreError(
            f"trial {trial_id!r} is in several sweeps ({', '.join(r['sweep'] for r in rows)}): pass --sweep NAME"
        )
    row = rows[0]
    if row["status"] != "finished":
        raise StoreError(f"trial {trial_id!r} did not finish (status {row['status']}): it has no model to export")
    if not row["checkpoint_path"]:
        raise StoreError(f"trial {trial_id!r} has no checkpoint recorded")
    if not Path(row["checkpoint_path"]).exists():
        raise StoreError(f"trial {trial_id!r}: its checkpoint {row['checkpoint_path']} is missing")
    return row


def run(args: argparse.Namespace) -> int:
    if (args.trial_id is None) == (args.model is None):
        raise ConfigError("give a TRIAL_ID or --model PATH (one of them)")
    out = Path(args.output).expanduser()
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise OutputError(f"--output {args.output}: exists and is not a directory")

    # where the artefact goes is checked before the database and the model are read (a file in the way, no room)
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # imported here: torch (and the core modules built on it) load only when a model is exported
    import torch

    from featherweight_core.export.exporter import export_model
    from featherweight_core.pipeline.checkpoint import load_checkpoint

    torch.set_num_threads(args.threads)
    recorded, parent_meta, source = None, None, args.model
    if args.trial_id is not None:
        row = resolve_trial(args.db, args.trial_id, args.sweep, limits_from_args(args))
        source = row["checkpoint_path"]
        recorded = {k: row[k] for k in ("params", "disk_bytes", "gzip_bytes")}
        parent = row.get("parent_checkpoint_path")
        if parent and Path(parent).is_file():
            try:
                parent_meta = load_checkpoint(parent)[2]
            except UserError:
                parent_meta = None
    if args.teacher is not None and not args.speed:
        raise ConfigError("--teacher times a teacher beside the model: it needs --speed")
    if args.teacher is not None and not Path(args.teacher).is_dir():
        raise ConfigError(f"--teacher {args.teacher}: not a directory (expected a fine-tuned teacher directory)")
    if args.max_disagree is not None and not 0 <= args.max_disagree <= 1:
        raise ConfigError(f"--max-disagree {args.max_disagree:g}: expected a fraction of the dev examples in [0, 1]")
    extra = {} if args.max_disagree is None else {"max_disagree": args.max_disagree}
    report = export_model(
        source,
        args.output,
        fmt=args.format,
        recorded=recorded,
        overwrite=args.overwrite,
        data=args.data,
        bpemb_dir=args.bpemb_dir,
        parent_meta=parent_meta,
        **extra,
    )
    speed = None
    if args.speed:
        from featherweight_core.export.speed import measure_speed
        from featherweight_core.students.latency import latency_table

        lats = measure_speed(
            source, teacher_dir=args.teacher, artefact_dir=args.output, data=args.data, bpemb_dir=args.bpemb_dir
        )
        ref = next((x for x in lats if x.model == "teacher"), None)
        speed = {"latency": [x.to_dict() for x in lats], "table": latency_table(lats, ref)}
    if args.json:
        print(json.dumps({**report.to_dict(), **({"speed": speed["latency"]} if speed else {})}))
        return 0
    print(
        f"exported {report.source_kind} {report.source} as {report.format} to {report.output_dir}"
        f" ({report.artefact_bytes:,} bytes: {', '.join(report.files)})"
    )
    print(
        f"  {report.precision}; checked on {report.examples_checked} dev examples (batch size"
        f" {report.check_batch_size}): predictions differ on {report.predictions_disagree}"
        + (f" (at most {report.max_disagree:g} of them may)" if report.max_disagree else "")
        + f", max logit difference {report.max_abs_logit_diff:.2g}"
    )
    print(f"  model file {report.model_file}: gzip {report.model_gzip_bytes:,} bytes")
    for k, (_, b) in report.recorded_size_check.items():
        print(f"  {k}: {b:,} as recorded")
    if speed:
        print("  CPU speed:")
        for line in speed["table"]:
            print(line)
    if report.fallback_reason:
        print(f"  not ONNX: {report.fallback_reason}", file=sys.stderr)
    return 0
