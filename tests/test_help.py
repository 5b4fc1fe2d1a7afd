"""Every command has a description and every option a one-line help that shows its default."""

from __future__ import annotations

import argparse
import re

import pytest

from sweep.cli import _all_parsers, build_parser


def _commands():
    return list(_all_parsers(build_parser()))


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        yield action


def test_every_command_has_a_description():
    missing = [p.prog for p in _commands() if not (p.description or "").strip()]
    for parser in _commands():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{parser.prog} {a.dest} (no help line)" for a in action._choices_actions if not a.help]
    assert not missing, f"commands without a description: {missing}"


def test_every_option_has_help_that_shows_its_default():
    problems = []
    for parser in _commands():
        formatter = parser._get_formatter()
        for action in _options(parser):
            name = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip():
                problems.append(f"{name}: no help")
                continue
            if not action.option_strings or action.required:
                continue  # positionals and required options have no default
            text = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
            if "default" not in text.lower():
                problems.append(f"{name}: help does not mention the default: {text!r}")
            elif re.search(r"default:? None\b", text):
                problems.append(f"{name}: default shown as None: {text!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("parser", _commands(), ids=lambda p: p.prog)
def test_help_renders(parser):
    text = parser.format_help()
    assert "(default: " in text or not any(a.option_strings for a in _options(parser) if not a.required)
