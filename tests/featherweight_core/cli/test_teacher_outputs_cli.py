"""`--teacher-outputs FILE` on the command line: augment writes the texts to label, the labelled file teaches
distill (with the bootstrap rows), and bad or uncovered files are one error line."""

from __future__ import annotations

import csv
import json
import re

import pytest

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from sweep.cli import main

TASK = get_task("synthetic")
DISTILL = ["distill", "--task", "synthetic", "--embedding", "hash", "--arch", "ffn", "--dim", "8", "--quiet"]
DISTILL += ["--vocab-size", "100", "--threads", "1", "--max-epochs", "1", "--alpha", "0.5"]


def _label(rows: list[dict], path) -> None:
    """A stand-in for an LLM: probabilities from a word it looks for."""
    with path.open("w") as f:
        for r in rows:
            p = 0.9 if "good" in r["sentence"] or "great" in r["sentence"] else 0.2
            f.write(json.dumps({"sentence": r["sentence"], "probs": [1 - p, p]}) + "\n")


def _one_error(capsys) -> str:
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_augment_writes_texts_to_label_and_their_labels_teach_distill(tmp_path, capsys):
    aug, texts = tmp_path / "aug.parquet", tmp_path / "to-label.csv"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    rc = main(
        ["augment", "--task", "synthetic", "--output", str(aug), "-n", "2", "-k", "4", "--max-examples", "40"]
        + ["--texts", str(texts), "--texts-with-task", "--no-progress", *cache]
    )
    assert rc == 0 and "distinct texts to label" in capsys.readouterr().err
    with texts.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["sentence"] and len(rows) > 3500  # the task's 3500 texts and the augmented ones
    labelled = tmp_path / "labelled.jsonl"
    _label(rows, labelled)
    out = tmp_path / "student"
    rc = main([*DISTILL, "--teacher-outputs", str(labelled), "--bootstrap", str(aug), "--output", str(out), *cache])
    assert rc == 0, capsys.readouterr().err
    assert (out / "student.pt").is_file()
    assert json.loads((out / "result.json").read_text())["teacher_outputs"]["files"] == [str(labelled)]
    # augment again (the same file: deterministic), the labelled file giving the report its teacher labels
    capsys.readouterr()
    rc = main(
        ["augment", "--task", "synthetic", "--output", str(tmp_path / "again.parquet"), "-n", "2", "-k", "4"]
        + ["--max-examples", "40", "--teacher-outputs", str(labelled), "--json", "--no-progress", *cache]
    )
    assert rc == 0 and "augmented (teacher argmax)" in json.loads(capsys.readouterr().out)["label_table"]
    # the same file teaches the fine-tuning of compress
    rc = main(
        ["compress", str(out / "student.pt"), "--prune", "magnitude", "--scope", "global", "--sparsity", "0.5"]
        + [
            "--prune-epochs",
            "1",
            "--alpha",
            "0.5",
            "--teacher-outputs",
            str(labelled),
            "--output",
            str(tmp_path / "pruned"),
            *cache,
        ]
    )
    assert rc == 0, capsys.readouterr().err


def test_uncovered_training_rows_are_an_error_unless_allowed(tmp_path, capsys):
    data = load_synthetic(TASK)
    half = [{"sentence": t[0]} for t in data.splits["train"].texts[:100]]
    path = tmp_path / "part.jsonl"
    _label(half, path)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main([*DISTILL, "--teacher-outputs", str(path), *cache]) == 2
    err = _one_error(capsys)
    # the synthetic task repeats some sentences: 100 texts cover a few more rows
    assert re.search(r"training rows: 1\d\d of 3,000 rows covered, 2,8\d\d without a teacher output \(first: ", err)
    assert "--allow-missing-outputs" in err
    assert main([*DISTILL, "--teacher-outputs", str(path), "--allow-missing-outputs", *cache]) == 0


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--teacher-outputs", "MISSING.csv"], "MISSING.csv: teacher outputs file not found"),
        (["--teacher-outputs", "BAD.jsonl"], "BAD.jsonl, row 1: label 'pos' is not one of the task's labels"),
        (["--teacher-outputs", "BAD.jsonl", "--teacher-logits", "x.npy"], "pass one teacher, not"),
        (["--teacher-outputs", "BAD.jsonl", "--teacher-outputs-layout", "probs"], "layout 'probs' needs a column"),
    ],
)
def test_bad_teacher_outputs_are_one_error_line(tmp_path, capsys, extra, expect):
    (tmp_path / "BAD.jsonl").write_text(json.dumps({"sentence": "a", "label": "pos"}) + "\n")
    extra = [str(tmp_path / x) if x.endswith((".csv", ".jsonl")) else x for x in extra]
    out = tmp_path / "run"
    assert main([*DISTILL, *extra, "--output", str(out), "--cache-dir", str(tmp_path / "c")]) == 2
    assert expect.replace("MISSING", str(tmp_path / "MISSING")).replace("BAD", str(tmp_path / "BAD")) in _one_error(
        capsys
    )
    assert not out.exists() or not any(out.iterdir())
