"""Teacher outputs from a file: every layout in every format, matching by text, coverage, the bad inputs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import DataError, Split
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.prepare import prepare
from featherweight_core.pipeline.run import run_distillation, student_config_for
from featherweight_core.students.distill import DistillConfig
from featherweight_core.teacher.outputs import (
    LABEL_SMOOTHING,
    PROB_FLOOR,
    normalize_text,
    outputs_fingerprint,
    read_teacher_outputs,
    write_texts,
)

SST = get_task("synthetic")
PAIR = get_task("synthetic_pair")
TEXTS = ["a good film", "a bad  film", "Plain words"]
PROBS = [[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]]


def write_rows(path, rows: list[dict]) -> None:
    """``rows`` in the format of ``path``'s suffix (lists as JSON text in CSV/TSV)."""
    if path.suffix == ".parquet":
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), str(path))
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with path.open("w", newline="") as f:
            w = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
            w.writerow(list(rows[0]))
            w.writerows([[json.dumps(v) if isinstance(v, list) else v for v in r.values()] for r in rows])


def layout_rows(layout: str) -> list[dict]:
    rows = []
    for text, p in zip(TEXTS, PROBS, strict=True):
        row = {"sentence": text}
        if layout == "label":
            row["label"] = SST.label_names[int(np.argmax(p))]
        elif layout == "columns":
            row.update(dict(zip(SST.label_names, p, strict=True)))
        elif layout == "probs":
            row["probs"] = p
        else:
            row["logits"] = [math.log(x) + 1.5 for x in p]
        rows.append(row)
    return rows


@pytest.mark.parametrize("fmt", [".parquet", ".csv", ".tsv", ".jsonl"])
@pytest.mark.parametrize("layout", ["label", "columns", "probs", "logits"])
def test_every_layout_in_every_format_round_trips(tmp_path, fmt, layout):
    path = tmp_path / f"out{fmt}"
    write_rows(path, layout_rows(layout))
    out = read_teacher_outputs(path, SST)
    assert out.layouts == (layout,) and out.rows_read == 3
    rows, found = out.lookup([(t,) for t in TEXTS])
    assert found.all()
    got = out.targets[rows]
    if layout == "label":
        hi, lo = math.log(1 - LABEL_SMOOTHING), math.log(LABEL_SMOOTHING)
        expected = [[lo, hi], [hi, lo], [hi, lo]]  # argmax of [0.5, 0.5] is the first label
    elif layout == "logits":
        expected = [[math.log(x) + 1.5 for x in p] for p in PROBS]
    else:  # probabilities become log-probabilities
        expected = np.log(PROBS)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_texts_match_after_nfc_and_whitespace_but_case_counts(tmp_path):
    path = tmp_path / "o.jsonl"
    write_rows(
        path, [{"sentence": "  caf\u0065\u0301   au\tlait ", "probs": [0.3, 0.7]}, {"sentence": "Hi", "probs": [1, 0]}]
    )
    out = read_teacher_outputs(path, SST)
    _, found = out.lookup([("café au lait",), ("café au\nlait",), ("hi",), ("Hi",)])
    assert found.tolist() == [True, True, False, True]
    assert normalize_text(" a \u00a0 b\n") == "a b"


def test_pairs_match_on_both_texts(tmp_path):
    path = tmp_path / "o.csv"
    write_rows(path, [{"sentence1": "a", "sentence2": "b", "label": "same"}])
    out = read_teacher_outputs(path, PAIR)
    assert out.lookup([("a", "b"), ("b", "a"), ("a", "c")])[1].tolist() == [True, False, False]


def test_coverage_counts_reports_and_fills_uncovered_rows_with_their_gold_label(tmp_path):
    path = tmp_path / "o.csv"
    write_rows(path, [{"sentence": "one", "probs": [0.4, 0.6]}, {"sentence": "stranger", "probs": [0.5, 0.5]}])
    out = read_teacher_outputs(path, SST)
    split = Split([("one",), ("two",), ("three",)], np.array([1, 0, 1]), ["k0", "k1", "k2"])
    with pytest.raises(DataError, match=r"1 of 3 rows covered, 2 without a teacher output \(first: 'two'; 'three'\)"):
        out.for_training(split, "training rows", allow_missing=False)
    targets, cov = out.for_training(split, "training rows", allow_missing=True)
    assert (cov.total, cov.covered, cov.missing) == (3, 1, 2)
    np.testing.assert_allclose(targets[0], np.log([0.4, 0.6]), rtol=1e-5)
    assert targets[1].argmax() == 0 and targets[2].argmax() == 1  # their gold labels, smoothed
    rows, _ = out.coverage(split.texts, "train")
    assert out.unused([rows]) == 1  # 'stranger' is in no split: counted, ignored


def test_probabilities_are_floored_and_renormalised(tmp_path):
    path = tmp_path / "o.jsonl"
    write_rows(path, [{"sentence": "x", "probs": [0.0, 1.005]}])
    t = read_teacher_outputs(path, SST).targets[0]
    assert np.exp(t).sum() == pytest.approx(1.0, abs=1e-6) and t[0] == pytest.approx(math.log(PROB_FLOOR), abs=1e-3)


@pytest.mark.parametrize(
    ("name", "rows", "layout", "message"),
    [
        ("o.xlsx", None, "auto", r"unknown teacher outputs format '.xlsx'"),
        ("o.csv", [{"text2": "a", "probs": [0.5, 0.5]}], "auto", r"no text column 'sentence' or 'text'"),
        ("o.csv", [{"sentence": "a", "label": "pos"}], "auto", r"row 1: label 'pos' is not one of the task's labels"),
        ("o.jsonl", [{"sentence": "a", "probs": [0.2, 0.3, 0.5]}], "auto", r"row 1: probs holds 3 values, expected 2"),
        ("o.jsonl", [{"sentence": "a", "logits": [1.0, float("nan")]}], "auto", r"row 1: logits .* not finite"),
        ("o.csv", [{"sentence": "a", "negative": "0.3", "positive": "0.3"}], "auto", r"sum to 0.6, expected 1"),
        ("o.jsonl", [{"sentence": "a", "probs": [-0.2, 1.2]}], "auto", r"negative value"),
        ("o.jsonl", [{"sentence": "a", "label": "negative", "probs": [1, 0]}], "auto", r"several .* layouts fit"),
        ("o.jsonl", [{"sentence": "a", "score": 1}], "auto", r"cannot tell the teacher outputs' layout"),
        ("o.jsonl", [{"sentence": "a", "label": "negative"}], "probs", r"layout 'probs' needs a column 'probs'"),
        (
            "o.csv",
            [{"sentence": "a", "label": "negative"}, {"sentence": " a", "label": "positive"}],
            "auto",
            r"row 2: the text 'a' has other outputs at .*row 1",
        ),
        (
            "o.csv",
            [{"sentence": "", "label": "negative"}],
            "auto",
            r"row 1: column 'sentence' holds '', expected a non-empty text",
        ),
    ],
)
def test_bad_files_are_one_line_errors_naming_file_and_row(tmp_path, name, rows, layout, message):
    path = tmp_path / name
    if rows is None:
        path.write_text("x")
    else:
        write_rows(path, rows)
    with pytest.raises(DataError, match=message) as e:
        read_teacher_outputs(path, SST, layout)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="teacher outputs file not found"):
        read_teacher_outputs(tmp_path / "nope.csv", SST)
    (tmp_path / "e.csv").write_text("sentence,label\n")
    with pytest.raises(DataError, match="has no rows"):
        read_teacher_outputs(tmp_path / "e.csv", SST)


def test_the_fingerprint_follows_the_content_not_the_name(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(a, layout_rows("label"))
    write_rows(b, layout_rows("label"))
    assert outputs_fingerprint([a]) == outputs_fingerprint([b]) != outputs_fingerprint([a], "label")
    write_rows(b, layout_rows("probs"))
    assert outputs_fingerprint([a]) != outputs_fingerprint([b])


def test_prepare_takes_soft_targets_from_the_file_and_its_dev_score(tmp_path):
    data = load_synthetic(SST, n_train=40, n_dev=20)
    path = tmp_path / "teacher.parquet"
    rows = [
        {"sentence": t[0], "label": SST.label_names[int(y)]}
        for name in ("train", "validation")
        for t, y in zip(data.splits[name].texts, data.splits[name].labels, strict=True)
    ]
    write_rows(path, rows)
    out = read_teacher_outputs(path, SST)
    p = prepare(SST, None, "char", 8, None, None, cache_dir=None, task_data=data, teacher_outputs=out)
    assert p.train.teacher_logits.shape == (40, 2)
    assert (p.train.teacher_logits.argmax(-1) == data.splits["train"].labels).all()
    assert out.dev_metrics(data)["score"] == 1.0  # the gold labels as a teacher score perfectly
    # dev covered: each student's agreement with the teacher there (fidelity), beside its dev metrics
    assert p.evals["validation"].teacher_logits is not None
    r = run_distillation(p, student_config_for(p, "ffn"), DistillConfig(alpha=0.5, max_epochs=1, optimizer="adam"))
    assert r.train.metrics["fidelity"] == r.train.metrics["accuracy"]  # the teacher is the gold labels here
    texts = tmp_path / "texts.csv"
    assert write_texts(texts, data.splits["train"].texts, SST) == len(set(data.splits["train"].texts))
    assert texts.read_text().splitlines()[0] == "sentence"
