"""Argument groups shared by commands that load a task and encode it."""

from __future__ import annotations

import argparse

from featherweight_core import vocab
from featherweight_core.errors import ConfigError
from featherweight_core.tasks import TASKS, TaskSpec, custom_task, get_task


def add_task_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("task and data")
    g.add_argument("--task", required=True, help=f"built-in task {sorted(TASKS)} or a name for a custom task")
    g.add_argument("--data", default=None,
                   help="'hub', 'synthetic', a local GLUE dir (e.g. data/glue) or a custom TSV/CSV file/dir;"
                        " default: synthetic for synthetic tasks, the HF hub for GLUE tasks")  # fmt: skip
    g.add_argument("--text-columns", default=None, help="custom task: comma-separated text column(s), 1 or 2")
    g.add_argument("--label-column", default="label", help="custom task: label column (default: label)")
    g.add_argument("--labels", default=None, help="custom task: comma-separated label names in id order")
    g.add_argument("--metric", default="accuracy", choices=vocab.TASK_METRICS, help="custom task: headline metric")


def add_encoder_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("embedding")
    g.add_argument("--embedding", choices=vocab.EMBEDDINGS, default=None if required else "bpe",
                   required=required, help="embedding type (default: bpe)")  # fmt: skip
    g.add_argument("--dim", type=int, default=None if required else 25, required=required,
                   help="embedding dimension (default: 25)")  # fmt: skip
    g.add_argument("--vocab-size", type=int, default=None,
                   help=f"BPE vocabulary / hash embedding K (default: {vocab.DEFAULT_VOCAB_SIZE}; char ignores it)")  # fmt: skip
    g.add_argument("--bpemb-dir", default=None, help="bpemb cache dir holding en/en.wiki.bpe.vs*.{model,d*.w2v.bin}")


def resolve_task(args: argparse.Namespace) -> TaskSpec:
    if args.task in TASKS:
        return get_task(args.task)
    if not args.text_columns or not args.labels:
        raise ConfigError(
            f"unknown task {args.task!r}: use one of {sorted(TASKS)}, or define a custom task with"
            " --text-columns and --labels (and --data PATH)"
        )
    if not args.data or args.data in ("hub", "synthetic"):
        raise ConfigError(f"custom task {args.task!r} needs --data PATH (a TSV/CSV file or a directory)")
    return custom_task(
        args.task,
        [c.strip() for c in args.text_columns.split(",") if c.strip()],
        [x.strip() for x in args.labels.split(",") if x.strip()],
        metric=args.metric,
        label_column=args.label_column,
    )


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1 (thread counts, epochs)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


STUDENT_THREADS_HELP = (
    "torch CPU threads (default 1: the students are small, and one thread per run is fastest; use a sweep to"
    " run several students side by side on more cores)"
)
