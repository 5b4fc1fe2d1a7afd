"""Bootstrap augmentation: deterministic, keeps pair structure, respects p / N / K / ratio, streams to Parquet,
and fails on bad inputs with one line and no half-written file."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import DataError, Split, TaskData
from featherweight_core.data.tasks import get_task
from featherweight_core.data.wordvectors import (
    VectorsError,
    load_word_vectors,
    nearest_neighbours,
    save_word_vectors,
    train_word_vectors,
)
from featherweight_core.teacher.augment import (
    AugmentConfig,
    FillMask,
    augment_to_file,
    format_label_distribution,
    read_augmented,
)
from featherweight_core.teacher.config import TeacherError
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_bert
from sweep.cli import main


@pytest.fixture(scope="module")
def data() -> TaskData:
    return load_synthetic(get_task("synthetic"), n_train=150, n_dev=20)


@pytest.fixture(scope="module")
def pair_data() -> TaskData:
    return load_synthetic(get_task("synthetic_pair"), n_train=60, n_dev=20)


@pytest.fixture(scope="module")
def vectors(data, pair_data):
    sents = [t.split() for d in (data, pair_data) for row in d.train.texts for t in row]
    return train_word_vectors(sents, dim=16, epochs=3, seed=0)


def rows(path):
    split, meta = read_augmented(path)
    return split, meta


def test_deterministic_under_seed_and_workers(tmp_path, data, vectors):
    cfg = AugmentConfig(n=5, seed=3, chunk_size=40)
    augment_to_file(data, tmp_path / "a.parquet", cfg, vectors=vectors)
    augment_to_file(data, tmp_path / "b.parquet", cfg, vectors=vectors)
    augment_to_file(data, tmp_path / "w.parquet", AugmentConfig(n=5, seed=3, chunk_size=40, workers=2), vectors=vectors)
    augment_to_file(data, tmp_path / "c.parquet", AugmentConfig(n=5, seed=4, chunk_size=40), vectors=vectors)
    a, b, w, c = (read_augmented(tmp_path / f"{x}.parquet")[0] for x in "abwc")
    assert a.texts == b.texts and a.keys == b.keys
    assert a.texts == w.texts and a.keys == w.keys  # process count does not change the output
    assert a.texts != c.texts
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_respects_n_no_duplicates_no_unchanged(tmp_path, data, vectors):
    augment_to_file(data, tmp_path / "a.parquet", AugmentConfig(n=4, seed=0), vectors=vectors)
    split, meta = read_augmented(tmp_path / "a.parquet", data.task)
    src = dict(zip(data.train.keys, data.train.texts, strict=True))
    per_source = Counter(k.rsplit(":", 1)[0].removeprefix("aug:") for k in split.keys)
    assert max(per_source.values()) <= 4
    assert len(set(split.texts)) == len(split.texts)
    import pyarrow.parquet as pq

    source_keys = pq.read_table(tmp_path / "a.parquet").column("source_key").to_pylist()
    for key, text in zip(source_keys, split.texts, strict=True):
        assert text != src[key]
    assert meta["config"]["n"] == 4 and meta["augmented_fields"] == ["sentence"]
    assert meta["task"] == data.task.to_dict() and meta["data_fingerprint"] == data.fingerprint()
    from featherweight_core.data.tasks import task_from_options

    other = task_from_options("mine", {"text_columns": "sentence", "labels": ["negative", "positive"]})
    with pytest.raises(DataError, match="augmented data was made for another task definition: name 'mine' vs"):
        read_augmented(tmp_path / "a.parquet", other)
    labels = dict(zip(data.train.keys, data.train.labels.tolist(), strict=True))
    assert split.labels.tolist() == [labels[k] for k in source_keys]


def test_replacements_come_from_the_k_nearest(tmp_path, data, vectors):
    k = 2
    augment_to_file(data, tmp_path / "a.parquet", AugmentConfig(n=3, k=k, seed=0), vectors=vectors)
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "a.parquet")
    src = dict(zip(data.train.keys, data.train.texts, strict=True))
    words = {w for row in data.train.texts for w in row[0].split()}
    nn = nearest_neighbours(vectors, words, k, accept=lambda w: any(c.isalnum() for c in w))
    changed = 0
    for key, text in zip(t.column("source_key").to_pylist(), t.column("sentence").to_pylist(), strict=True):
        orig, new = src[key][0].split(), text.split()
        assert len(orig) == len(new)  # word-for-word replacement keeps the structure
        for o, n in zip(orig, new, strict=True):
            if o != n:
                changed += 1
                assert n in nn[o]
    assert changed > 0


def test_p_controls_the_replacement_rate(tmp_path, data, vectors):
    rates = []
    for p in (0.1, 0.5):
        out = tmp_path / f"p{p}.parquet"
        augment_to_file(data, out, AugmentConfig(n=6, p=p, seed=0), vectors=vectors)
        import pyarrow.parquet as pq

        t = pq.read_table(out)
        src = dict(zip(data.train.keys, data.train.texts, strict=True))
        diff = total = 0
        for key, text in zip(t.column("source_key").to_pylist(), t.column("sentence").to_pylist(), strict=True):
            orig = src[key][0].split()
            diff += sum(o != n for o, n in zip(orig, text.split(), strict=True))
            total += sum(any(c.isalnum() for c in o) for o in orig)
        rates.append(diff / total)
    # variants with no change are dropped, which inflates the low rate a little
    assert 0.08 < rates[0] < 0.25 and 0.4 < rates[1] < 0.6


def test_ratio_keeps_an_exact_deterministic_subset(tmp_path, data, vectors):
    augment_to_file(data, tmp_path / "all.parquet", AugmentConfig(n=4, seed=0), vectors=vectors)
    rep = augment_to_file(data, tmp_path / "q.parquet", AugmentConfig(n=4, seed=0, ratio=0.25), vectors=vectors)
    full = read_augmented(tmp_path / "all.parquet")[0]
    quarter = read_augmented(tmp_path / "q.parquet")[0]
    assert rep.generated == len(full) and rep.kept == len(quarter) == math.floor(len(full) * 0.25)
    assert set(quarter.keys) <= set(full.keys)


@pytest.mark.parametrize("fields, changed_sides", [("auto", {0}), ("first", {0}), ("second", {1}), ("all", {0, 1})])
def test_pair_structure(tmp_path, pair_data, vectors, fields, changed_sides):
    out = tmp_path / "pair.parquet"
    augment_to_file(pair_data, out, AugmentConfig(n=4, seed=0, fields=fields), vectors=vectors)
    split, meta = read_augmented(out, pair_data.task)
    import pyarrow.parquet as pq

    src = dict(zip(pair_data.train.keys, pair_data.train.texts, strict=True))
    seen = set()
    for key, text in zip(pq.read_table(out).column("source_key").to_pylist(), split.texts, strict=True):
        assert len(text) == 2
        for side in (0, 1):
            if text[side] != src[key][side]:
                seen.add(side)
                assert side in changed_sides
    assert seen == changed_sides
    assert meta["augmented_fields"] == [pair_data.task.text_fields[i] for i in sorted(changed_sides)]


def test_fill_mask_mode_with_a_local_masked_lm(tmp_path, data, vectors):
    texts = [row[0] for row in data.train.texts]
    mlm = build_small_bert(
        texts,
        tmp_path / "mlm",
        SmallBertConfig(vocab_size=200, hidden=16, layers=1, heads=2, intermediate=32),
        head="masked-lm",
    )
    fm = FillMask(mlm, k=3, batch_size=8)
    assert fm.single_piece("movie")
    cands = fm.candidates([(["the", "movie", "was", "good", "."], 1), (["the", "plot", "was", "dull", "."], 3)])
    assert len(cands) == 2 and all(len(c) == 3 for c in cands)
    assert "movie" not in cands[0] and all(not c.startswith("##") for c in cands[0])
    cfg = AugmentConfig(n=3, k=3, seed=0, mode="fill-mask", chunk_size=50, mlm_batch_size=16)
    r1 = augment_to_file(data, tmp_path / "f1.parquet", cfg, vectors=vectors, mlm=mlm)
    augment_to_file(data, tmp_path / "f2.parquet", cfg, vectors=vectors, mlm=mlm)
    assert r1.kept > 0
    assert read_augmented(tmp_path / "f1.parquet")[0].texts == read_augmented(tmp_path / "f2.parquet")[0].texts
    assert read_augmented(tmp_path / "f1.parquet")[1]["mlm"] == str(mlm)


def test_missing_vectors_file(tmp_path, data):
    with pytest.raises(VectorsError, match="word-vectors file not found"):
        augment_to_file(data, tmp_path / "x.parquet", AugmentConfig(n=2), vectors=tmp_path / "glove.txt")
    assert list(tmp_path.iterdir()) == []


def test_empty_dataset(tmp_path, data, vectors):
    empty = TaskData(
        data.task, {"train": Split([], np.zeros(0), []), "validation": data.splits["validation"]}, data.report, "empty"
    )
    with pytest.raises(DataError, match="train split is empty"):
        augment_to_file(empty, tmp_path / "x.parquet", AugmentConfig(n=2), vectors=vectors)
    assert list(tmp_path.iterdir()) == []


def test_unknown_masked_lm_offline(tmp_path, data, vectors, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TeacherError, match="pass a local model directory"):
        augment_to_file(
            data,
            tmp_path / "x.parquet",
            AugmentConfig(n=2, mode="fill-mask"),
            vectors=vectors,
            mlm="no-such-org/no-such-mlm",
        )
    with pytest.raises(ValueError, match="needs a masked LM"):
        augment_to_file(data, tmp_path / "x.parquet", AugmentConfig(n=2, mode="fill-mask"), vectors=vectors)
    assert list(tmp_path.iterdir()) == []


def test_vectors_with_no_overlap_produce_a_clear_error(tmp_path, data):
    kv = train_word_vectors([["zzz", "yyy", "xxx"]] * 5, dim=4, epochs=1)
    with pytest.raises(DataError, match="produced no examples"):
        augment_to_file(data, tmp_path / "x.parquet", AugmentConfig(n=2), vectors=kv)
    assert list(tmp_path.iterdir()) == []


def test_config_validation():
    for bad in ({"p": 0}, {"p": 1.5}, {"n": 0}, {"k": 0}, {"ratio": 0}, {"mode": "x"}, {"fields": "both"}):
        with pytest.raises(ValueError):
            AugmentConfig(**bad)
    with pytest.raises(ValueError, match="sentence-pair"):
        AugmentConfig(fields="second").field_indices(1)


def test_vectors_formats_roundtrip(tmp_path, vectors):
    save_word_vectors(vectors, tmp_path / "v.bin")
    kv = load_word_vectors(tmp_path / "v.bin")
    assert kv.vector_size == 16 and set(kv.index_to_key) == set(vectors.index_to_key)
    glove = tmp_path / "glove.txt"  # GloVe text has no header line
    glove.write_text("good 0.1 0.2 0.3\nbad -0.1 -0.2 -0.3\ngreat 0.1 0.2 0.31\n")
    g = load_word_vectors(glove)
    assert g.vector_size == 3 and nearest_neighbours(g, ["good"], 1)["good"] == ("great",)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not vectors")
    with pytest.raises(VectorsError, match="cannot read word vectors"):
        load_word_vectors(bad)


def test_label_report_and_cli(tmp_path, capsys):
    table = format_label_distribution(("neg", "pos"), {"original": np.array([0, 1, 1, 1]), "aug": np.array([0, 0])})
    assert "75.0%" in table and "100.0%" in table
    out = tmp_path / "aug.parquet"
    rc = main(
        [
            "augment",
            "--task",
            "synthetic",
            "--output",
            str(out),
            "-n",
            "2",
            "--max-examples",
            "100",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ]
    )
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "original" in text and "augmented (source label)" in text
    rc = main(
        [
            "augment",
            "--task",
            "synthetic",
            "--output",
            str(tmp_path / "y.parquet"),
            "--vectors",
            str(tmp_path / "missing.txt"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "missing.txt" in err and "\n" not in err
    assert not (tmp_path / "y.parquet").exists()
