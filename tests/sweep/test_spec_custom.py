"""Custom tasks in sweep specs: the task definition keys, their errors, baselines, and trial ids."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sweep.spec import SpecError, validate


def _raw(tmp_path: Path, **task) -> dict:
    data = tmp_path / "tweets.csv"
    if not data.exists():
        data.write_text("sentiment,text\nnegative,bad day\nneutral,a day\npositive,great day\n")
    t = {
        "data": str(data),
        "text_columns": ["text"],
        "label_column": "sentiment",
        "labels": ["negative", "neutral", "positive"],
        "metric": "macro_f1",
        **task,
    }
    return {
        "name": "tw",
        "storage": str(tmp_path / "runs"),
        "tasks": {"tweets": t},
        "grid": {"archs": ["ffn"], "embeddings": ["hash"], "dims": [8], "vocab_sizes": [100]},
    }


def test_custom_task_validates_and_defines_the_task(tmp_path):
    spec = validate(_raw(tmp_path, split={"dev_fraction": 0.2, "test_fraction": 0.1, "seed": 3}))
    ts = spec.task_spec("tweets")
    assert ts.custom and ts.label_names == ("negative", "neutral", "positive") and ts.metric == "macro_f1"
    assert ts.split.dev_fraction == 0.2 and ts.split.test_fraction == 0.1 and ts.split.seed == 3
    (trial,) = spec.distill_trials()
    assert trial.task == "tweets" and trial.task_definition == ts.definition_fingerprint()


def test_the_task_definition_is_part_of_the_trial_id(tmp_path):
    a = validate(_raw(tmp_path)).distill_trials()[0].trial_id
    b = validate(_raw(tmp_path, split={"seed": 1})).distill_trials()[0].trial_id
    assert a != b  # another split is another experiment


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "f2"}, "tasks.tweets.metric: 'f2' is not one of"),
        ({"data": None}, "tasks.tweets.data: custom task 'tweets' needs its data"),
        ({"data": "missing.csv"}, "tasks.tweets.data: 'missing.csv' does not exist (expected a CSV/TSV file"),
        ({"text_columns": None}, "tasks.tweets: task 'tweets' is not a built-in task"),
        ({"on_bad_bytes": "ignore"}, "tasks.tweets.on_bad_bytes:"),
        ({"split": {"dev_fraction": 1.5}}, "tasks.tweets.split.dev_fraction:"),
        ({"baselines": [{"name": "mine", "score": 91}]}, "tasks.tweets.baselines[0].score: 91 is outside [0.0, 1.0]"),
        ({"baselines": [{"score": 0.9}]}, "tasks.tweets.baselines[0].name: expected a non-empty name"),
        ({"baselines": [{"name": "x", "score": 0.9, "colour": 1}]}, "tasks.tweets.baselines[0].colour: unknown key"),
    ],
)
def test_custom_task_errors_name_the_key(tmp_path, change, message):
    raw = _raw(tmp_path)
    t = raw["tasks"]["tweets"]
    for k, v in change.items():
        if v is None:
            t.pop(k)
        else:
            t[k] = v
    with pytest.raises(SpecError) as e:
        validate(copy.deepcopy(raw))
    assert str(e.value).startswith(message), str(e.value)


def test_builtin_task_ids_do_not_change(tmp_path):
    raw = {"name": "s", "tasks": {"synthetic": {}}, "grid": {"embeddings": ["hash"]}}
    (t,) = validate(raw).distill_trials()
    assert t.task_definition is None
