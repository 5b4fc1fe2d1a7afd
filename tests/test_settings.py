"""Training settings are declared once (featherweight_core.students.distill_config.DistillConfig's fields): the sweep spec's
``training:`` section, the distillation trials, ``featherweight distill`` and the docs table all follow from them, so
a new setting is one dataclass line."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from featherweight_core.cli import distill as distill_command
from featherweight_core.cli.common import HelpFormatter, setting_type
from featherweight_core.settings import Setting, markdown_rows, setting, settings_of
from featherweight_core.students.distill_config import POOLING, TRAINING_SETTINGS, DistillConfig
from featherweight_core.students.models import StudentConfig
from sweep.spec import SpecError, validate
from trainables.trial import DistillTrial

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"name": "s", "tasks": {"synthetic": {}}, "grid": {"archs": ["ffn"], "embeddings": ["hash"], "dims": [8]}}


def _other_value(s: Setting):
    """A valid value of ``s`` that is not its default."""
    if s.kind == "choice":
        return next(c for c in s.choices if c != s.default)
    if s.kind == "int":
        return (s.default or 1) + 2
    return 0.5


def _distill_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    distill_command.add_parser(parser.add_subparsers())
    return parser


def _help_of(parser: argparse.ArgumentParser, flag: str) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["distill"]
    action = next(a for a in sub._actions if flag in a.option_strings)
    return HelpFormatter("featherweight")._get_help_string(action) % vars(action)


def test_every_config_setting_is_a_training_setting():
    # every field declared with setting() on DistillConfig, and nothing else, besides the student's pooling
    declared = [f.name for f in dataclasses.fields(DistillConfig) if "setting" in f.metadata]
    assert declared and list(TRAINING_SETTINGS) == ["pooling", *declared]
    assert StudentConfig.__dataclass_fields__["pooling"].default == POOLING.default


@pytest.mark.parametrize("name", list(TRAINING_SETTINGS))
def test_a_setting_reaches_spec_trials_and_command_line(name):
    s = TRAINING_SETTINGS[name]
    # the spec's training section: default filled in, another value accepted and carried into every trial
    assert validate(SPEC, check_files=False).training[name] == s.default
    value = _other_value(s)
    spec = validate({**SPEC, "training": {name: value}}, check_files=False)
    assert spec.training[name] == value
    assert {getattr(t, name) for t in spec.distill_trials()} == {value}
    # the trial field's default is the setting's: a trial at its default keeps its id
    assert DistillTrial.__dataclass_fields__[name].default == s.default
    # featherweight distill: the option, its default and its help with the default
    parser = _distill_parser()
    args = parser.parse_args(["distill", "--task", "synthetic"])
    assert getattr(args, name) == s.default
    args = parser.parse_args(["distill", "--task", "synthetic", s.flag, str(value)])
    assert getattr(args, name) == value
    text = _help_of(parser, s.flag)
    assert "default" in text.lower()
    if s.default is not None:
        assert f"(default: {s.default})" in text


def test_bad_values_name_the_key_in_spec_and_command_line():
    with pytest.raises(SpecError, match=r"^training\.max_epochs: 0 must be >= 1$"):
        validate({**SPEC, "training": {"max_epochs": 0}}, check_files=False)
    with pytest.raises(SpecError, match=r"^training\.temperature: 0 must be > 0$"):
        validate({**SPEC, "training": {"temperature": 0}}, check_files=False)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a number > 0, 'auto' or 'none', got 'x'"):
        setting_type(TRAINING_SETTINGS["temperature"])("x")
    assert setting_type(TRAINING_SETTINGS["temperature"])("none") == "none"


def test_a_new_setting_is_one_field():
    @dataclasses.dataclass(frozen=True)
    class Config:
        plain: int = 0
        label_smoothing: float = setting(0.0, "label smoothing of the CE loss", kind="float", minimum=0)

    (s,) = settings_of(Config).values()
    assert (s.name, s.default, s.flag) == ("label_smoothing", 0.0, "--label-smoothing")
    assert s.error(0.1) is None
    assert s.error(-1) == "-1 must be >= 0"
    assert s.error("x") == "expected a finite number, got 'x'"
    assert setting_type(s)("0.2") == 0.2
    assert markdown_rows({"label_smoothing": s}, "training") == [
        "| `training.label_smoothing` | 0.0 | label smoothing of the CE loss |"
    ]


def test_docs_table_matches_the_declarations():
    text = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- training settings: generated -->\n(.*?)\n<!-- end of training settings -->", text, re.S)
    assert table, "docs/sweeps.md lost its generated training settings table"
    expected = ["| key | default | meaning |", "| --- | --- | --- |", *markdown_rows(TRAINING_SETTINGS, "training")]
    assert table.group(1).splitlines() == expected, "regenerate the table:\n" + "\n".join(expected)


def test_training_settings_leave_the_rest_of_the_spec_alone():
    spec = validate({**SPEC, "name": "mine", "training": {"max_epochs": 3, "optimizer": "adam"}}, check_files=False)
    assert spec.name == "mine" and spec.raw["name"] == "mine"
