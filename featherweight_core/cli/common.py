"""Argument groups shared by commands that load a task and encode it."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featherweight_core import vocab
from featherweight_core.data.tasks import TASKS, TaskSpec, task_from_options
from featherweight_core.errors import ConfigError
from featherweight_core.settings import Setting

# command-line flag of each task option (errors from tasks.task_from_options start with the option's key)
TASK_FLAGS = {
    "text_columns": "--text-columns",
    "label_column": "--label-column",
    "labels": "--labels",
    "metric": "--metric",
    "split.dev_fraction": "--dev-fraction",
    "split.test_fraction": "--test-fraction",
    "split.seed": "--split-seed",
    "encoding": "--encoding",
    "on_bad_bytes": "--on-bad-bytes",
}


def one_line_errors(*parsers: argparse.ArgumentParser) -> None:
    """Command-line mistakes (a bad number, an unknown choice, a missing option) print one ``error:`` line naming
    the option and the value, exit status 2 - like every other error the user can fix - instead of argparse's
    usage block."""
    for p in parsers:

        def error(message: str, p: argparse.ArgumentParser = p) -> None:
            p.exit(2, f"error: {message} (see `{p.prog} --help`)\n")

        p.error = error  # type: ignore[method-assign]


def add_task_args(p: argparse.ArgumentParser, required: bool = True, recorded: str | None = None) -> None:
    """--task, --data and the custom-task options. ``recorded``: what the task and data default to when omitted
    (e.g. "the checkpoint's"); then --task is optional."""
    g = p.add_argument_group("task and data")
    default = f" (default: {recorded} task)" if recorded else ""
    g.add_argument(
        "--task",
        required=required and not recorded,
        default=None,
        help=f"built-in task {sorted(TASKS)} or a name for a custom task{default}",
    )
    g.add_argument(
        "--data",
        default=None,
        help="'hub', 'synthetic', a local GLUE dir (e.g. data/glue), a custom CSV/TSV file or directory"
        " (train + dev [+ test] files), or hf:OWNER/NAME[:CONFIG] for a custom task; default:"
        " synthetic for synthetic tasks, the HF hub for GLUE tasks"
        + (f", {recorded} data for a custom task" if recorded else ""),
    )
    c = p.add_argument_group("custom task (your own dataset; see docs/tasks.md)")
    c.add_argument(
        "--text-columns",
        default=None,
        help="text column(s) in the header, comma-separated: 1 or 2 (default: none; a custom task needs them)",
    )
    c.add_argument("--label-column", default=None, help="label column (default: label)")
    c.add_argument(
        "--labels",
        default=None,
        help="label names as written in the data, comma-separated, in id order (default: none; a custom task"
        " needs them)",
    )
    c.add_argument(
        "--metric",
        default=None,
        choices=vocab.TASK_METRICS,
        help="headline metric (default accuracy; f1 = positive class = the second label, binary only)",
    )
    c.add_argument("--dev-fraction", type=finite_float, default=None, help="one data file: dev share (default 0.1)")
    c.add_argument("--test-fraction", type=finite_float, default=None, help="one data file: test share (default 0)")
    c.add_argument("--split-seed", type=seed_int, default=None, help="one data file: seed of the split (default 0)")
    c.add_argument("--no-stratify", action="store_true", help="one data file: split without keeping class shares")
    c.add_argument("--encoding", default=None, help="text encoding of the data files (default utf-8)")
    c.add_argument(
        "--on-bad-bytes",
        default=None,
        choices=vocab.BAD_BYTES_POLICIES,
        help="bytes not valid in the encoding: replace (with U+FFFD, counted; default) or error",
    )


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task options given on the command line (only those given), as tasks.task_from_options takes them."""
    opts: dict[str, Any] = {}
    if getattr(args, "text_columns", None) is not None:
        opts["text_columns"] = [c.strip() for c in args.text_columns.split(",") if c.strip()]
    if getattr(args, "labels", None) is not None:
        opts["labels"] = [x.strip() for x in args.labels.split(",") if x.strip()]
    for key in ("label_column", "metric", "encoding", "on_bad_bytes"):
        if getattr(args, key, None) is not None:
            opts[key] = getattr(args, key)
    split = {
        k: getattr(args, a)
        for k, a in (("dev_fraction", "dev_fraction"), ("test_fraction", "test_fraction"), ("seed", "split_seed"))
        if getattr(args, a, None) is not None
    }
    if getattr(args, "no_stratify", False):
        split["stratify"] = False
    if split:
        opts["split"] = split
    return opts


def _flagged(e: ConfigError) -> ConfigError:
    msg = str(e)
    key = msg.split(":", 1)[0]
    if key in TASK_FLAGS:
        msg = TASK_FLAGS[key] + msg[len(key) :]
    return ConfigError(
        msg.replace("needs text_columns and labels (and data)", "needs --text-columns and --labels (and --data PATH)")
    )


def build_task(name: str, options: dict[str, Any]) -> TaskSpec:
    """tasks.task_from_options, with errors naming the command-line flags."""
    try:
        return task_from_options(name, options)
    except ConfigError as e:
        raise _flagged(e) from None


def resolve_task(args: argparse.Namespace) -> TaskSpec:
    """The task the command line describes (built-in, or custom from --text-columns/--labels/...)."""
    return build_task(args.task, task_options(args))


def resolve_recorded_task(args: argparse.Namespace, recorded: dict[str, Any] | None, what: str) -> TaskSpec:
    """The task of an artefact (``recorded``: its ``TaskSpec.to_dict()``): task options given on the command line
    are checked against it - a different definition is a one-line ConfigError saying what differs. Without a
    recorded task (an old artefact) the command line must name it."""
    given = task_options(args)
    if recorded is None:
        if not args.task:
            raise ConfigError(f"{what} records no task; pass --task NAME (and the custom-task options)")
        return resolve_task(args)
    stored = TaskSpec.from_dict(recorded)
    if not args.task and not given:
        return stored
    name = args.task or stored.name
    base = {k: v for k, v in stored.to_dict().items() if k not in ("name", "custom")} if name not in TASKS else {}
    if "split" in given and "split" in base:
        given["split"] = {**base["split"], **given["split"]}
    asked = build_task(name, {**base, **given})
    diffs = stored.differences(asked)
    if diffs:
        raise ConfigError(f"the task options do not match the task {what} was made for: {'; '.join(diffs)}")
    return stored


def load_student_with_task(args: argparse.Namespace):
    """``(model, resolved StudentConfig, meta, task)`` of ``args.checkpoint``: the task is the one the checkpoint
    records (task options on the command line must agree with it) and must fit the student's labels and inputs."""
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.pipeline.checkpoint import load_checkpoint

    model, cfg, meta = load_checkpoint(args.checkpoint)
    cfg = cfg.resolved()
    task = resolve_recorded_task(args, recorded_task_of(meta), f"checkpoint {args.checkpoint}")
    if (task.pair, task.num_labels) != (cfg.pair, cfg.num_labels):
        raise ConfigError(
            f"task {task.name!r} does not fit the checkpoint's student ({cfg.num_labels} labels, pair={cfg.pair})"
        )
    return model, cfg, meta, task


def recorded_task_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The task definition an artefact's metadata records: ``task_spec`` (``TaskSpec.to_dict()``), a ``task``
    that is such a dict, or (older artefacts) a built-in task's name; None when there is none."""
    spec = meta.get("task_spec")
    if isinstance(spec, dict):
        return spec
    task = meta.get("task")
    if isinstance(task, dict):
        return task
    if isinstance(task, str) and task in TASKS:
        return {"name": task}
    return None


def check_data_fingerprint(task: TaskSpec, recorded: str | None, actual: str, what: str, log=None) -> None:
    """A custom task's data must be the data the artefact was made from (a ConfigError otherwise); for a built-in
    task a different copy (hub vs local files) is only a warning on ``log``."""
    if not recorded or recorded == actual:
        return
    if task.custom:
        raise ConfigError(
            f"the data differs from the data {what} was made from (fingerprint {actual} vs {recorded});"
            " pass the same --data and split options"
        )
    if log is not None:
        print(f"warning: the data differs from what {what} was made from", file=log)


def add_encoder_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("embedding")
    g.add_argument(
        "--embedding",
        choices=vocab.EMBEDDINGS,
        default=None if required else "bpe",
        required=required,
        help="embedding type (default: bpe)",
    )
    g.add_argument(
        "--dim",
        type=positive_int,
        default=None if required else 25,
        required=required,
        help="embedding dimension (default: 25)",
    )
    g.add_argument(
        "--vocab-size",
        type=positive_int,
        default=None,
        help=f"BPE vocabulary / hash embedding K (default: {vocab.DEFAULT_VOCAB_SIZE}; char ignores it)",
    )
    g.add_argument(
        "--bpemb-dir",
        default=None,
        help="bpemb cache dir holding en/en.wiki.bpe.vs*.{model,d*.w2v.bin} (default: bpemb's own download"
        " cache; bpe embeddings only)",
    )


def output_parent(output: str | None) -> Path | None:
    """The directory a command's ``--output`` file (or a directory it swaps into place) is written in."""
    return None if output is None else Path(output).expanduser().absolute().parent


# argparse types of the numeric options. argparse prefixes their messages with the option ("argument --lr: ..."),
# so every bad number is one error line naming the option, the value and the range expected. Floats must be
# finite: "inf" and "nan" parse as floats but no setting means them.


def int_in(lo: int, hi: int | None = None, what: str | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``lo..hi`` (no upper bound without ``hi``)."""
    expected = what or (f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}")

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return n

    parse.__name__ = "int"
    return parse


def float_in(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite number between ``lo`` and ``hi`` (each bound closed unless ``*_open``; None: none)."""
    if lo is not None and hi is not None:
        expected = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        expected = f"a number {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        expected = f"a number {'<' if hi_open else '<='} {hi:g}"
    else:
        expected = "a finite number"

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r} (not a finite number)")
        if lo is not None and (x < lo or (lo_open and x == lo)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        if hi is not None and (x > hi or (hi_open and x == hi)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return x

    parse.__name__ = "float"
    return parse


positive_int = int_in(1, what="a positive integer")  # thread counts, epochs, sizes
nonnegative_int = int_in(0)  # counts where 0 means "none" / "off"
seed_int = int_in(0, 2**32 - 1, what="a seed in 0..4294967295")  # numpy's seed range, which every seed reaches
finite_float = float_in()  # the range is checked where the value is used (named the same)
positive_float = float_in(0, lo_open=True)  # learning rates, temperatures
nonnegative_float = float_in(0)  # weight decay
fraction = float_in(0, 1)  # loss weights, probabilities, shares
dropout_rate = float_in(0, 1, hi_open=True)  # 1 would drop everything


def setting_type(s: Setting) -> Callable[[str], Any] | None:
    """argparse type of a declared setting (None for a choice: argparse checks ``choices``). A setting whose
    default is a word (``auto``) also takes its words, and ``none`` where it may be null."""
    if s.kind == "choice":
        return None
    if s.kind == "int":
        lo = int(s.minimum or 0)
        number, expected = (positive_int, "a positive integer") if lo == 1 else (int_in(lo), f"an integer >= {lo}")
    elif s.above is not None:
        number, expected = float_in(s.above, lo_open=True), f"a number > {s.above:g}"
    else:
        number, expected = float_in(s.minimum), "a finite number" if s.minimum is None else f"a number >= {s.minimum:g}"
    words = s.words + (("none",) if s.nullable and s.default is not None else ())
    if not words:
        return number
    quoted = [repr(w) for w in words]
    expected = (
        f"{expected}, {', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else f"{expected} or {quoted[0]}"
    )

    def parse(value: str) -> Any:
        if value in words:
            return value
        try:
            return number(value)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None

    parse.__name__ = s.kind
    return parse


def add_setting_option(group, s: Setting) -> None:
    """``--max-epochs`` and the like: a declared setting as an option, with its default, range and help."""
    group.add_argument(s.flag, type=setting_type(s), choices=s.choices or None, default=s.default, help=s.help)


DEVICE_HELP = "cpu, cuda or cuda:N (checked: CUDA must be available and N one of its devices)"


def device_arg(value: str, allow_auto: bool = False) -> str:
    """argparse check of a ``--device``: ``cpu``, ``cuda``, ``cuda:N`` (and ``auto`` where ``allow_auto``) -
    what every command's device handling supports; ``cuda`` must be available here and N one of its devices."""
    expected = ("auto, " if allow_auto else "") + "cpu, cuda or cuda:N"
    v = value.strip().lower()
    if v == "cpu" or (allow_auto and v == "auto"):
        return v
    head, sep, index = v.partition(":")
    if head != "cuda" or (sep and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"unknown device {value!r}; expected {expected}")
    import torch

    if not torch.cuda.is_available():
        instead = "cpu or auto" if allow_auto else "cpu"
        raise argparse.ArgumentTypeError(f"{value!r}: CUDA is not available on this machine; use {instead}")
    if sep and int(index) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{value!r}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0..)"
        )
    return v


def device_or_auto(value: str) -> str:
    """argparse type: :func:`device_arg` that also accepts ``auto`` (a GPU if there is one, else the CPU)."""
    return device_arg(value, allow_auto=True)


device_arg.__name__ = device_or_auto.__name__ = "device"


STUDENT_THREADS_HELP = (
    "torch CPU threads (default 1: the students are small, and one thread per run is fastest; use a sweep to"
    " run several students side by side on more cores)"
)


class HelpFormatter(argparse.HelpFormatter):
    """Every command's help formatter (``sweep.cli`` sets it on each parser): description paragraphs wrapped to the
    terminal, indented lines (examples) kept as written; each option's help ends with its default -
    ``(default: X)``, ``(default: off)`` for a flag - unless the help text already says what the default is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out = []
        for para in textwrap.dedent(text).strip("\n").split("\n\n"):
            lines = para.splitlines()
            if any(line[:1].isspace() for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(lines), width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is argparse.SUPPRESS
            or action.required
            or not action.option_strings
            or action.default is None  # a computed default: the help text must say it (tests/test_help.py)
        ):
            return text
        if action.nargs == 0:  # store_true / store_false / store_const
            shown = "on" if action.default not in (False, 0) else "off"
        elif isinstance(action.default, (list, tuple)) and not action.default:
            shown = "none"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})"


def add_teacher_outputs_args(group, what: str) -> None:
    """``--teacher-outputs FILE`` (repeatable), ``--teacher-outputs-layout``, ``--allow-missing-outputs``: a
    teacher you cannot run, given by a file of its outputs (``featherweight_core.teacher.outputs``)."""
    group.add_argument(
        "--teacher-outputs",
        action="append",
        default=None,
        metavar="FILE",
        help=f"a file of teacher outputs (.parquet, .csv, .tsv, .jsonl; rows matched to texts) {what};"
        " repeat for several files (default: none)",
    )
    group.add_argument(
        "--teacher-outputs-layout",
        choices=vocab.TEACHER_OUTPUT_LAYOUTS,
        default="auto",
        help="how the file holds the outputs: label, columns (one probability column per label), probs, logits"
        " (default: auto, detected from the columns)",
    )
    group.add_argument(
        "--allow-missing-outputs",
        action="store_true",
        help="training rows without a teacher output are taught their gold label (default: such rows are an error)",
    )


def teacher_outputs_of(args: argparse.Namespace, task: TaskSpec):
    """The teacher outputs ``--teacher-outputs`` names, read and checked for ``task``, or None."""
    if not args.teacher_outputs:
        return None
    # deferred: numpy and the readers load only when a file is given (keeps --help fast)
    from featherweight_core.teacher.outputs import read_teacher_outputs

    return read_teacher_outputs(args.teacher_outputs, task, args.teacher_outputs_layout)
