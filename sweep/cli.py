"""The ``featherweight`` command line.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; the module sets ``func`` on its parser.
Modules are imported to build the parser but import heavy dependencies only inside ``func``, so ``--help`` is fast.
Errors a user can fix (bad values, missing files: ``featherweight_core.errors.UserError``) print one
``error: ...`` line and exit with status 2. Any other exception is a bug: it shows its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from featherweight_core.cli.common import HelpFormatter, one_line_errors
from featherweight_core.errors import UserError
from sweep.stopping import exit_now_if_ray_was_terminated, exit_status, how_stopped

COMMAND_MODULES = (
    "featherweight_core.cli.distill",
    "featherweight_core.cli.analyze",
    "featherweight_core.cli.compress",
    "featherweight_core.cli.teacher",
    "featherweight_core.cli.theseus",
    "featherweight_core.cli.augment",
    "featherweight_core.cli.bertvision",
    "analysis.query_commands",
    "analysis.commands",
    "analysis.export_commands",
    "sweep.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featherweight",
        description="Distil transformer teachers into tiny students, sweep grids, keep results in DuckDB.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    for p in _all_parsers(parser):
        p.formatter_class = HelpFormatter  # every option's help shows its default
    _describe_subcommands(parser)
    one_line_errors(*_all_parsers(parser))  # a command-line mistake is one error line too, exit 2
    return parser


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:  # argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _all_parsers(sub)


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand without its own description gets its one-line help as one (``COMMAND --help`` says what it
    does, not only its usage)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not (sub.description or "").strip() and helps.get(name):
                    text = helps[name]
                    sub.description = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
                _describe_subcommands(sub)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt as e:  # Ctrl-C or a sweep's SIGTERM; its StageStopped says how far it got, how to resume
        print(str(e) or how_stopped(), file=sys.stderr)
        exit_now_if_ray_was_terminated(exit_status())
        return exit_status()
    except UserError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
