"""Task definitions: task_from_options (the one place options become a task), SplitConfig, to_dict/from_dict."""

from __future__ import annotations

import json

import pytest

from featherweight_core.data.tasks import TASKS, SplitConfig, TaskSpec, custom_task, get_task, task_from_options
from featherweight_core.errors import ConfigError

THREE = {"text_columns": ["text"], "labels": ["neg", "neu", "pos"]}


def test_builtin_name_without_options_is_the_builtin_task():
    for name in TASKS:
        assert task_from_options(name) is TASKS[name]
        assert task_from_options(name, {}) is TASKS[name]
        assert TaskSpec.from_dict(TASKS[name].to_dict()) is TASKS[name]
        assert TASKS[name].to_dict() == {"name": name} and not TASKS[name].custom


def test_custom_task_defaults():
    t = task_from_options("tweets", THREE)
    assert t.custom and t.metric == "accuracy" and t.label_column == "label" and t.encoding == "utf-8"
    assert t.on_bad_bytes == "replace" and t.split == SplitConfig() and t.text_columns == ("text",)
    assert (t.num_labels, t.pair) == (3, False)
    pair = task_from_options("dups", {"text_columns": ["q1", "q2"], "labels": ["no", "yes"], "metric": "f1"})
    assert pair.pair and pair.metric == "f1"
    assert task_from_options("one", {"text_columns": "body", "labels": ["a", "b"]}).text_columns == ("body",)


@pytest.mark.parametrize(
    "options",
    [
        THREE,
        {**THREE, "metric": "macro_f1", "label_column": "y", "encoding": "latin-1", "on_bad_bytes": "error"},
        {
            "text_columns": ["a", "b"],
            "labels": ["x", "y"],
            "split": {"dev_fraction": 0.2, "test_fraction": 0.1, "seed": 7, "stratify": False},
        },
    ],
)
def test_to_dict_from_dict_round_trip(options):
    t = task_from_options("mine", options)
    d = json.loads(json.dumps(t.to_dict()))  # JSON-able
    back = TaskSpec.from_dict(d)
    assert back == t and back.to_dict() == d
    assert back.definition_fingerprint() == t.definition_fingerprint() and len(t.definition_fingerprint()) == 12
    other = task_from_options("mine", {**options, "labels": ["p", "q", "r"]})
    assert other.definition_fingerprint() != t.definition_fingerprint()
    assert any(d.startswith("labels") for d in t.differences(other))


@pytest.mark.parametrize(
    "options, starts",
    [
        ({**THREE, "metric": "f2"}, "metric: 'f2' is not one of ['accuracy', 'f1', 'macro_f1']"),
        ({**THREE, "metric": "f1"}, "metric: 'f1' (of the positive class) needs a binary task"),
        ({**THREE, "split": {"dev_fraction": 1.5}}, "split.dev_fraction: expected a number in (0, 1), got 1.5"),
        ({**THREE, "split": {"dev_fraction": 0}}, "split.dev_fraction:"),
        ({**THREE, "split": {"test_fraction": -0.1}}, "split.test_fraction: expected a number in [0, 1)"),
        ({**THREE, "split": {"dev_fraction": 0.5, "test_fraction": 0.5}}, "split.test_fraction: dev_fraction +"),
        ({**THREE, "split": {"seed": "x"}}, "split.seed: expected an integer"),
        ({**THREE, "split": {"stratify": "yes"}}, "split.stratify:"),
        ({**THREE, "split": {"dev": 0.1}}, "split.dev: unknown split option"),
        ({**THREE, "split": 0.1}, "split: expected a mapping"),
        ({**THREE, "encoding": "utf-9"}, "encoding: unknown text encoding 'utf-9'"),
        ({**THREE, "encoding": 8}, "encoding: expected an encoding name"),
        ({**THREE, "on_bad_bytes": "skip"}, "on_bad_bytes: 'skip' is not one of ['replace', 'error']"),
        ({**THREE, "text_columns": ["a", "b", "c"]}, "text_columns: expected 1 or 2 names"),
        ({**THREE, "text_columns": 5}, "text_columns: expected a list of strings"),
        ({**THREE, "labels": ["only"]}, "labels: expected at least 2 names"),
        ({**THREE, "labels": ["a", "a"]}, "labels: duplicate names"),
        ({**THREE, "label_column": "text"}, "label_column: 'text' is also a text column"),
        ({**THREE, "label_column": ""}, "label_column: expected a column name"),
        ({**THREE, "colour": "red"}, "colour: unknown task option"),
    ],
)
def test_bad_option_error_starts_with_its_key(options, starts):
    with pytest.raises(ConfigError) as err:
        task_from_options("tweets", options)
    assert str(err.value).startswith(starts), str(err.value)


def test_unknown_name_without_definition():
    with pytest.raises(ConfigError) as err:
        task_from_options("tweets", {"labels": ["a", "b"]})
    assert str(err.value) == (
        f"task 'tweets' is not a built-in task ({sorted(TASKS)}); a custom task needs text_columns and labels"
        " (and data)"
    )
    with pytest.raises(ConfigError, match=r"^metric: task 'sst2' is a built-in task"):
        task_from_options("sst2", {"metric": "f1"})
    with pytest.raises(ConfigError, match="letters, digits"):
        task_from_options("my/task", THREE)


def test_custom_task_shorthand_and_from_dict_errors():
    t = custom_task("reviews", ["text"], ["bad", "good"], split={"test_fraction": 0.2})
    assert t == task_from_options(
        "reviews", {"text_columns": ["text"], "labels": ["bad", "good"], "split": {"test_fraction": 0.2}}
    )
    assert t.extra_metrics == ("f1",)
    with pytest.raises(ConfigError, match="clashes"):
        custom_task("sst2", ["text"], ["a", "b"])
    with pytest.raises(ConfigError):
        TaskSpec.from_dict({"labels": ["a"]})
    assert TaskSpec.from_dict("qqp") is get_task("qqp")
