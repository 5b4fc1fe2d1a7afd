"""The spec's top-level ``scheduler:`` key: left out, the spec and every trial id are as before; given, its settings
are checked with one error line each; the docs table follows the declarations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from featherweight_core.settings import markdown_rows
from sweep.pareto_halving import SETTINGS, HalvingSettings
from sweep.spec import SpecError, validate

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "s",
    "tasks": {"synthetic": {}},
    "grid": {"archs": ["ffn", "rnn"], "embeddings": ["hash"], "dims": [8], "seeds": [1, 2]},
}


def test_without_the_key_the_spec_and_trials_are_as_before():
    spec = validate(SPEC, check_files=False)
    assert spec.scheduler is None and "scheduler" not in spec.raw
    with_it = validate({**SPEC, "scheduler": "pareto_halving"}, check_files=False)
    assert [t.trial_id for t in with_it.distill_trials()] == [t.trial_id for t in spec.distill_trials()]


def test_a_name_or_a_mapping_gives_the_settings():
    assert validate({**SPEC, "scheduler": "pareto_halving"}, check_files=False).scheduler == HalvingSettings()
    spec = validate(
        {**SPEC, "scheduler": {"kind": "pareto_halving", "eta": 2, "seeds": "first", "seeds_margin": 2}},
        check_files=False,
    )
    assert spec.scheduler == HalvingSettings(eta=2, grace=1, seeds="first", seeds_margin=2.0)
    assert spec.raw["scheduler"]["kind"] == "pareto_halving"
    assert validate(yaml.safe_load(yaml.safe_dump(spec.raw)), check_files=False).scheduler == spec.scheduler


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("asha", "scheduler.kind: 'asha' is not a known scheduler; expected 'pareto_halving'"),
        ({"eta": 3}, "scheduler.kind: None is not a known scheduler; expected 'pareto_halving'"),
        (3, "scheduler: expected 'pareto_halving' or a mapping {kind: pareto_halving, ...}, got 3"),
        ({"kind": "pareto_halving", "eta": 1}, "scheduler.eta: 1 must be >= 2"),
        ({"kind": "pareto_halving", "grace": 0.5}, "scheduler.grace: expected an integer, got 0.5"),
        ({"kind": "pareto_halving", "seeds": "some"}, "scheduler.seeds: 'some' is not one of ['all', 'first']"),
        ({"kind": "pareto_halving", "seeds_margin": -1}, "scheduler.seeds_margin: -1 must be >= 0.0"),
        ({"kind": "pareto_halving", "rungs": [1]}, "scheduler.rungs: unknown key; expected one of"),
    ],
)
def test_a_bad_scheduler_is_one_line_naming_the_key(value, message):
    with pytest.raises(SpecError) as e:
        validate({**SPEC, "scheduler": value}, check_files=False)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_docs_table_matches_the_declarations():
    text = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- scheduler settings: generated -->\n(.*?)\n<!-- end of scheduler settings -->", text, re.S)
    assert table, "docs/sweeps.md lost its generated scheduler settings table"
    expected = ["| key | default | meaning |", "| --- | --- | --- |", *markdown_rows(SETTINGS, "scheduler")]
    assert table.group(1).splitlines() == expected, "regenerate the table:\n" + "\n".join(expected)
