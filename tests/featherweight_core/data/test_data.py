"""Tasks and data loading: GLUE formats (SST-2, QQP, MNLI), custom TSV/CSV, malformed rows, header and label
errors, offline hub, and the synthetic task."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from featherweight_core.data.loading import load_glue_dir, load_synthetic, load_task_data, read_table
from featherweight_core.data.synthetic import NEGATIVE, POSITIVE, generate_synthetic
from featherweight_core.data.taskdata import DataError
from featherweight_core.data.tasks import TASKS, TaskSpec, custom_task, get_task

# ---------------------------------------------------------------- tasks


def test_builtin_tasks():
    assert set(TASKS) >= {"sst2", "qqp", "mnli", "synthetic", "synthetic_pair"}
    sst2, qqp, mnli = get_task("sst2"), get_task("qqp"), get_task("mnli")
    assert not sst2.pair and sst2.num_labels == 2 and sst2.metric == "accuracy"
    assert qqp.pair and "f1" in qqp.extra_metrics
    assert mnli.num_labels == 3 and mnli.eval_splits == ("validation_matched", "validation_mismatched")
    with pytest.raises(ValueError, match="'sst3'"):
        get_task("sst3")


def test_task_validation():
    with pytest.raises(ValueError, match="text_fields"):
        TaskSpec("x", ("a", "b", "c"), ("n", "p"))
    with pytest.raises(ValueError, match="at least 2 labels"):
        TaskSpec("x", ("a",), ("n",))
    with pytest.raises(ValueError, match="f1 needs a binary task"):
        TaskSpec("x", ("a",), ("a", "b", "c"), metric="f1")
    with pytest.raises(ValueError, match="clashes"):
        custom_task("sst2", ["text"], ["n", "p"])


# ---------------------------------------------------------------- GLUE directories


@pytest.fixture(scope="module")
def glue(shared_data) -> Path:
    return shared_data / "glue"


def test_sst2_dev(glue, tmp_path):
    # a GLUE dir whose train is SST-2 dev keeps the test fast and exercises the same reader
    d = tmp_path / "SST-2"
    d.mkdir()
    shutil.copy(glue / "SST-2" / "dev.tsv", d / "train.tsv")
    shutil.copy(glue / "SST-2" / "dev.tsv", d / "dev.tsv")
    data = load_task_data(get_task("sst2"), tmp_path)  # the GLUE root, containing SST-2/
    dev = data.splits["validation"]
    assert len(dev) == 872 and set(dev.labels.tolist()) == {0, 1}
    assert dev.keys[0] == "validation:2" and len(set(dev.keys)) == 872  # line numbers: stable ids
    assert all(len(t) == 1 and t[0] for t in dev.texts)
    assert data.report.skipped == 0
    assert load_task_data(get_task("sst2"), d).fingerprint() == data.fingerprint()  # task dir works too


def test_sst2_full_train(glue):
    data = load_glue_dir(get_task("sst2"), glue)
    assert len(data.train) == 67349 and len(data.splits["validation"]) == 872


def test_qqp_sample(glue):
    data = load_task_data(get_task("qqp"), glue / "samples" / "QQP" / "16-13")
    train = data.train
    assert len(train) == 32 and all(len(t) == 2 for t in train.texts)
    assert train.keys[0] == "train:360105"  # QQP keys use the id column
    assert train.texts[0] == ("Can I develope mobile apps with c++?", "How can I develop mobile apps with C++?")
    assert train.labels[0] == 1
    assert len(data.splits["validation"]) == 32


def test_mnli_sample_without_mismatched(glue, capsys):
    data = load_task_data(get_task("mnli"), glue / "samples" / "MNLI" / "16-13")
    assert "validation_matched" in data.splits and "validation_mismatched" not in data.splits
    assert "dev_mismatched.tsv not found" in capsys.readouterr().err
    train = data.train
    assert len(train) == 48 and set(train.labels.tolist()) <= {0, 1, 2}
    assert train.keys[0] == "train:136628e"  # MNLI keys use pairID
    assert train.texts[0][0].startswith("Price caps may sound more attractive")


def test_glue_dir_without_train(tmp_path):
    with pytest.raises(DataError, match=r"no train\.tsv"):
        load_task_data(get_task("sst2"), tmp_path)


# ---------------------------------------------------------------- custom files


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_tsv_string_labels(tmp_path):
    task = custom_task("reviews", ["text"], ["bad", "good"])
    rows = "".join(f"review number {i}\t{'good' if i % 3 else 'bad'}\n" for i in range(40))
    data = load_task_data(task, _write(tmp_path / "all.tsv", "text\tlabel\n" + rows))
    assert len(data.train) + len(data.splits["validation"]) == 40
    assert len(data.splits["validation"]) == 4  # 10 % held out, deterministically
    again = load_task_data(task, tmp_path / "all.tsv")
    assert again.splits["validation"].keys == data.splits["validation"].keys
    assert data.task.extra_metrics == ("f1",)


def test_custom_csv_int_labels_dir(tmp_path):
    task = custom_task("pairs", ["q1", "q2"], ["no", "yes"], label_column="dup")
    _write(tmp_path / "train.csv", 'q1,q2,dup\n"a, quoted",b,1\nc,d,0\ne,f,1\n')
    _write(tmp_path / "dev.csv", "q1,q2,dup\ng,h,0\n")
    data = load_task_data(task, tmp_path)
    assert data.train.texts[0] == ("a, quoted", "b")
    assert data.train.labels.tolist() == [1, 0, 1]
    assert data.splits["validation"].labels.tolist() == [0]
    assert data.train.keys == ["train:2", "train:3", "train:4"]


def test_malformed_rows_are_counted(tmp_path):
    task = custom_task("reviews", ["text"], ["bad", "good"])
    lines = ["text\tlabel"] + [f"ok {i}\t{'good' if i % 2 else 'bad'}" for i in range(30)]
    lines += ["too\tmany\tcolumns", "missing label\t", "dash\t-", "only one column", "typo\tgoood"]
    data = load_task_data(task, _write(tmp_path / "all.tsv", "\n".join(lines) + "\n"))
    rep = data.report.splits["all"]
    assert (rep.rows, rep.kept, rep.wrong_columns, rep.missing_label, rep.unknown_label) == (35, 30, 2, 2, 1)
    assert data.report.skipped == 5
    assert "30/35 rows kept" in str(rep) and "2 wrong column count" in str(rep)


REVIEWS = custom_task("reviews", ["text"], ["bad", "good"])


def _rows(n: int, start: int = 0) -> list[str]:
    return [f"review {i},{'good' if i % 2 else 'bad'}" for i in range(start, start + n)]


def test_a_runaway_quote_is_malformed_quoting_at_its_line(tmp_path):
    lines = ["text,label", *_rows(3), '"review 3 starts a quote,good', *_rows(30, 4)]
    path = _write(tmp_path / "all.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"all\.csv:5: malformed quoting: a quote opened in the row at line 5 runs on"):
        load_task_data(REVIEWS, path)
    # closed again further down (the quote swallows rows 6..15 only): still malformed, same line
    lines[15] = 'review 14",good'
    with pytest.raises(DataError, match=r"all\.csv:5: malformed quoting.* to line 16, so 11 lines"):
        load_task_data(REVIEWS, _write(path, "\n".join(lines) + "\n"))


def test_quoted_multi_line_texts_are_not_malformed(tmp_path):
    """Line breaks inside a quoted field are legal; a few lines of prose that hold the delimiter are not rows."""
    review = '"first line, with a comma\nsecond line, also good\nthird"'
    lines = ["text,label", *(f"{review},{'good' if i % 2 else 'bad'}" for i in range(20))]
    data = load_task_data(REVIEWS, _write(tmp_path / "all.csv", "\n".join(lines) + "\n"))
    assert data.report.splits["all"].kept == 20
    assert data.train.texts[0][0].startswith("first line, with a comma\nsecond line")


def test_quotes_are_plain_characters_in_tsv(tmp_path):
    lines = [
        "text\tlabel",
        *(r.replace(",", "\t") for r in _rows(10)),
        '"a quote\tgood',
        *(r.replace(",", "\t") for r in _rows(10, 10)),
    ]
    data = load_task_data(REVIEWS, _write(tmp_path / "all.tsv", "\n".join(lines) + "\n"))
    assert data.report.splits["all"].kept == 21


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_file_that_lost_most_rows_does_not_load(tmp_path, suffix):
    d = "," if suffix == ".csv" else "\t"
    lines = [f"text{d}label"] + [f"ok{d}good", f"x{d}y{d}bad", f"a{d}b{d}c{d}bad"] * 10
    path = _write(tmp_path / f"all{suffix}", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"all\{suffix}: most rows are unusable.*10/30 rows kept \(skipped: 20 wrong"):
        load_task_data(REVIEWS, path)


def test_a_single_class_training_split_is_refused(tmp_path):
    path = _write(tmp_path / "all.csv", "text,label\n" + "nice,good\n" * 20)
    with pytest.raises(DataError, match=r"all\.csv: the training split holds a single class \('good', all 18 rows\)"):
        load_task_data(REVIEWS, path)
    (tmp_path / "dir").mkdir()
    _write(tmp_path / "dir" / "train.csv", "text,label\n" + "nice,good\n" * 20)
    _write(tmp_path / "dir" / "dev.csv", "text,label\nnice,good\nnasty,bad\n")
    with pytest.raises(DataError, match=r"train\.csv: the training split holds a single class"):
        load_task_data(REVIEWS, tmp_path / "dir")
    # a dev split of one class is legal (a small dev set may hold one)
    _write(tmp_path / "dir" / "train.csv", "text,label\nnice,good\nnasty,bad\n")
    _write(tmp_path / "dir" / "dev.csv", "text,label\nnice,good\n")
    assert len(load_task_data(REVIEWS, tmp_path / "dir").train) == 2


def test_wrong_header_names_file_line_and_value(tmp_path):
    task = custom_task("reviews", ["text"], ["bad", "good"])
    path = _write(tmp_path / "all.tsv", "sentence\tlabel\nhello\tgood\n")
    with pytest.raises(DataError) as err:
        load_task_data(task, path)
    msg = str(err.value)
    assert f"{path}:1" in msg and "'text'" in msg and "sentence" in msg


def test_wrong_label_set_names_file_line_and_value(tmp_path):
    task = custom_task("reviews", ["text"], ["bad", "good"])
    path = _write(tmp_path / "all.tsv", "text\tlabel\nfine\tgood\nmeh\tneutral\nugh\tneutral\n")
    with pytest.raises(DataError) as err:
        load_task_data(task, path)
    msg = str(err.value)
    assert f"{path}:3" in msg and "'neutral'" in msg and "bad" in msg


def test_sst2_label_out_of_range(tmp_path):
    _write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t2\nc\t2\n")
    with pytest.raises(DataError, match=r"train\.tsv:3: label '2'"):
        read_table(tmp_path / "train.tsv", get_task("sst2"), "train", ("sentence",), "label")


def test_empty_and_missing_files(tmp_path):
    task = custom_task("reviews", ["text"], ["bad", "good"])
    with pytest.raises(DataError, match="empty"):
        load_task_data(task, _write(tmp_path / "e.tsv", ""))
    with pytest.raises(DataError, match="no usable rows"):
        load_task_data(task, _write(tmp_path / "h.tsv", "text\tlabel\n"))
    with pytest.raises(DataError, match="no such file"):
        load_task_data(task, tmp_path / "nope.tsv")
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match=r"no train\.tsv or train\.csv"):
        load_task_data(task, tmp_path / "d")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------- hub, offline


def test_hub_offline_fails_fast_with_local_hint(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_task_data(get_task("sst2"), "hub")
    assert time.perf_counter() - t0 < 5
    assert "--data" in str(err.value) and "local GLUE directory" in str(err.value)


def test_hub_unreachable_fails_fast(monkeypatch):
    from featherweight_core.data import loading as data_mod

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(data_mod, "hub_reachable", lambda *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="--data PATH"):
        load_task_data(get_task("qqp"), None)  # the default source of GLUE tasks is the hub
    assert time.perf_counter() - t0 < 5


def test_hub_for_non_hub_task():
    with pytest.raises(DataError, match="not on the HF hub"):
        load_task_data(custom_task("mine", ["t"], ["a", "b"]), "hub")


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic():
    a = load_synthetic(get_task("synthetic"), n_train=200, n_dev=50)
    b = load_synthetic(get_task("synthetic"), n_train=200, n_dev=50)
    assert a.train.texts == b.train.texts and (a.train.labels == b.train.labels).all()
    assert a.fingerprint() == b.fingerprint()
    c = load_synthetic(get_task("synthetic"), n_train=200, n_dev=50, seed=14)
    assert c.fingerprint() != a.fingerprint()
    assert a.train.texts != a.splits["validation"].texts[:50]
    assert 0.35 < a.train.labels.mean() < 0.65  # balanced enough


def _clause_label(clause: str) -> int:
    words = clause.split()
    adj = next(w for w in words if w in POSITIVE or w in NEGATIVE)
    return int((adj in POSITIVE) != ("not" in words))


def test_synthetic_needs_word_order():
    """``A but B`` takes B's label; ``B but A`` has the same bag of words and takes A's. When A and B disagree
    (a large share of such sentences), no bag-of-words model can get both right."""
    texts, labels = generate_synthetic(2000, seed=0)
    but = [(t, y) for (t,), y in zip(texts, labels.tolist(), strict=True) if " but " in t]
    assert len(but) > 100
    disagree = 0
    for text, y in but:
        a, b = text.removesuffix(" .").split(" but ")
        assert y == _clause_label(b)  # the generator's rule
        disagree += _clause_label(a.split(",")[-1]) != _clause_label(b)
    assert disagree / len(but) > 0.3


def test_synthetic_pair_and_source_checks():
    data = load_task_data(get_task("synthetic_pair"), None, n_train=100, n_dev=20)
    assert all(len(t) == 2 for t in data.train.texts)
    assert set(np.unique(data.train.labels).tolist()) <= {0, 1}
    with pytest.raises(DataError, match="generated"):
        load_task_data(get_task("synthetic"), "/some/dir")
    with pytest.raises(DataError, match="only serves the synthetic tasks"):
        load_task_data(get_task("sst2"), "synthetic")
    with pytest.raises(ValueError, match="n must be >= 0"):
        generate_synthetic(-1)


def test_fingerprint_changes_with_labels():
    data = load_synthetic(get_task("synthetic"), n_train=50, n_dev=10)
    fp = data.fingerprint()
    data.train.labels[0] = 1 - data.train.labels[0]
    assert data.fingerprint() != fp


# ---------------------------------------------------------------- custom tasks: bad rows, encodings, splits

THREE_CLASS = {"text_columns": ["text"], "labels": ["neg", "neu", "pos"]}


def _messy_csv(path: Path) -> Path:
    """30 good rows (lines 2-31) then one row per kind of trouble; see the expectations below."""
    good = b"".join(b"g%d,row number %d,%s,extra\n" % (i, i, (b"neg", b"neu", b"pos")[i % 3]) for i in range(30))
    path.write_bytes(
        b"id,text,label,notes\n"
        + good
        + b"x1,caf\xe9 au lait,pos,z\n"  # 32: latin-1 byte, kept with U+FFFD
        + b"x2,\xff\xfe broken,neg,z\n"  # 33: undecodable, kept
        + b"x3,too,many,cols,here\n"  # 34: wrong column count
        + b"x4,short\n"  # 35: wrong column count
        + b"x5,no label,,z\n"  # 36: missing label
        + b"x6,what,neutral,z\n"  # 37: unknown label
        + b"x7,  ,pos,z\n"  # 38: empty text
        + b'x8,"multi\nline",neg,z\n'  # 39-40: quoted newline, kept
        + b"x9,\xc3\x28 bad and ragged\n"  # 41: undecodable and wrong column count
    )
    return path


def test_messy_csv_counts_every_kind_with_first_line(tmp_path):
    from featherweight_core.data.tasks import task_from_options

    path = _messy_csv(tmp_path / "tweets.csv")
    data = load_task_data(task_from_options("tweets", THREE_CLASS), path)
    rep = data.report.splits["all"]
    expect = {
        "bad_bytes": (3, 32),
        "wrong_columns": (3, 34),
        "missing_label": (1, 36),
        "unknown_label": (1, 37),
        "empty_text": (1, 38),
    }
    for kind, (count, line) in expect.items():
        assert getattr(rep, kind) == count, kind
        assert rep.first[kind] == f"{path}:{line}", kind
    assert (rep.rows, rep.kept, data.report.skipped) == (39, 33, 6)
    assert data.report.counts() == {k: c for k, (c, _) in expect.items()}
    text = str(data.report)
    assert text.startswith(f"all: {path}: 33/39 rows kept (skipped: 3 wrong column count (first at {path}:34)")
    assert f"1 unknown label (first at {path}:37)" in text and f"1 empty text (first at {path}:38)" in text
    assert f"3 rows with undecodable bytes, replaced by U+FFFD (first at {path}:32)" in text
    texts = {t[0]: k for sp in data.splits.values() for t, k in zip(sp.texts, sp.keys, strict=True)}
    assert texts["caf\ufffd au lait"] == "all:32" and texts["multi\nline"] == "all:39"
    assert sum(len(s) for s in data.splits.values()) == 33 and set(data.splits) == {"train", "validation"}
    assert data.split_info["mode"] == "held_out" and data.split_info["dev_fraction"] == 0.1


def test_bad_bytes_error_policy_and_other_encoding(tmp_path):
    from featherweight_core.data.tasks import task_from_options

    path = _messy_csv(tmp_path / "tweets.csv")
    with pytest.raises(DataError) as err:
        load_task_data(task_from_options("tweets", {**THREE_CLASS, "on_bad_bytes": "error"}), path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:32: bytes not valid utf-8 (") and "--encoding" in msg
    assert "--on-bad-bytes replace" in msg and "\n" not in msg
    latin = load_task_data(task_from_options("tweets", {**THREE_CLASS, "encoding": "latin-1"}), path)
    assert latin.report.splits["all"].bad_bytes == 0
    assert ("café au lait",) in [t for sp in latin.splits.values() for t in sp.texts]


def test_stratified_split_proportions_and_seed(tmp_path):
    from featherweight_core.data.tasks import task_from_options

    counts = {"a": 53, "b": 31, "c": 16}
    rows = [f"text {lab} {i},{lab}" for lab, n in counts.items() for i in range(n)]
    path = _write(tmp_path / "d.csv", "text,label\n" + "\n".join(rows) + "\n")
    split = {"dev_fraction": 0.15, "test_fraction": 0.2, "seed": 3}
    task = task_from_options("abc", {"text_columns": ["text"], "labels": list(counts), "split": split})
    data = load_task_data(task, path)
    assert set(data.splits) == {"train", "validation", "test"}
    keys = [k for sp in data.splits.values() for k in sp.keys]
    assert len(keys) == len(set(keys)) == 100  # a partition of the rows
    for name, frac in (("validation", 0.15), ("test", 0.2)):
        per_class = np.bincount(data.splits[name].labels, minlength=3)
        for c, n in enumerate(counts.values()):
            assert abs(per_class[c] - frac * n) <= 1, (name, c)
    assert data.split_info == {
        "mode": "held_out",
        "dev_fraction": 0.15,
        "test_fraction": 0.2,
        "seed": 3,
        "stratify": True,
        "sizes": {k: len(v) for k, v in data.splits.items()},
    }
    again = load_task_data(task, path)
    assert all(again.splits[n].keys == data.splits[n].keys for n in data.splits)
    other = load_task_data(
        task_from_options("abc", {"text_columns": ["text"], "labels": list(counts), "split": {**split, "seed": 4}}),
        path,
    )
    assert other.splits["test"].keys != data.splits["test"].keys
    assert other.fingerprint() != data.fingerprint()


def test_sentence_pair_custom_task_tsv(tmp_path):
    from featherweight_core.data.tasks import task_from_options

    rows = "".join(f"{i}\tquestion {i}?\tquestion {i + 1}?\t{'same' if i % 2 else 'diff'}\n" for i in range(20))
    path = _write(tmp_path / "pairs.tsv", "id\tq1\tq2\tis_dup\n" + rows)
    task = task_from_options(
        "dups", {"text_columns": ["q1", "q2"], "labels": ["diff", "same"], "label_column": "is_dup", "metric": "f1"}
    )
    data = load_task_data(task, path)
    assert task.pair and all(len(t) == 2 for t in data.train.texts)
    assert ("question 1?", "question 2?") in data.train.texts + data.splits["validation"].texts


def test_directory_with_train_dev_test(tmp_path):
    from featherweight_core.data.tasks import task_from_options

    task = task_from_options("tweets", THREE_CLASS)
    _write(tmp_path / "train.csv", "text,label,src\na,neg,x\nb,neu,x\nc,pos,x\n")
    _write(tmp_path / "validation.csv", "label,text\nneu,d\n")  # other column order is fine
    _write(tmp_path / "test.tsv", "text\tlabel\ne\tpos\nf\tneg\n")
    data = load_task_data(task, tmp_path)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 3, "validation": 1, "test": 2}
    assert data.splits["test"].labels.tolist() == [2, 0] and data.split_info["mode"] == "files"
    assert data.split_info["files"] == {"train": "train.csv", "validation": "validation.csv", "test": "test.tsv"}


@pytest.mark.parametrize(
    "content, expect",
    [
        ("body,label\nhi,neg\n", "lacks column(s) ['text']"),
        ("text,label\n,neg\n", "no usable rows"),
    ],
)
def test_custom_header_and_empty_errors(tmp_path, content, expect):
    from featherweight_core.data.tasks import task_from_options

    path = _write(tmp_path / "x.csv", content)
    with pytest.raises(DataError) as err:
        load_task_data(task_from_options("tweets", THREE_CLASS), path)
    assert str(err.value).startswith(str(path)) and expect in str(err.value)


def test_sniffed_delimiter_and_hf_source_offline(tmp_path, monkeypatch):
    from featherweight_core.data.tasks import task_from_options

    task = task_from_options("tweets", THREE_CLASS)
    rows = "".join(f"t{i};{('neg', 'neu', 'pos')[i % 3]}\n" for i in range(12))
    data = load_task_data(task, _write(tmp_path / "data.txt", "text;label\n" + rows))
    assert sum(len(s) for s in data.splits.values()) == 12
    from featherweight_core.data import loading as data_mod

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(data_mod, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(DataError) as err:
        load_task_data(task, "hf:someone/tweets:default")
    assert "someone/tweets:default" in str(err.value) and "local CSV/TSV" in str(err.value)
    with pytest.raises(DataError, match="needs data|--data"):
        load_task_data(task, None)


def test_crlf_and_lone_cr_line_ends(tmp_path):
    from featherweight_core.data.tasks import task_from_options

    rows = b"".join(b"r%d,pos\r\n" % i for i in range(20))
    path = tmp_path / "cr.csv"
    path.write_bytes(b"text,label\r\na\rb,pos\r\n" + b'"q\r\nz",neg\r\n' + rows)
    data = load_task_data(task_from_options("x", {"text_columns": "text", "labels": ["neg", "pos"]}), path)
    rep = data.report.splits["all"]
    assert (rep.rows, rep.kept, rep.first["wrong_columns"]) == (23, 22, f"{path}:2")  # a lone CR ends a line
    texts = {t[0]: k for sp in data.splits.values() for t, k in zip(sp.texts, sp.keys, strict=True)}
    assert texts["b"] == "all:3" and texts["q\nz"] == "all:4" and texts["r0"] == "all:6"
