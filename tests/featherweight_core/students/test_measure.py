"""Metrics (accuracy, F1, edge cases) and size measures (params by group, disk bytes, gzip, parallel safety)."""

from __future__ import annotations

import doctest
import gzip
import io
import json
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from featherweight_core.students import measure
from featherweight_core.students.measure import accuracy, disk_size, f1_score, param_counts, size_report, split_metrics
from featherweight_core.students.models import StudentConfig, build_student

# one thread: on a shared, loaded 2-core machine two OpenMP threads make small models ~40x slower
torch.set_num_threads(1)


def test_accuracy():
    assert accuracy(np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == 0.5
    assert accuracy(np.array([2, 1]), np.array([2, 1])) == 1.0
    assert math.isnan(accuracy(np.array([], dtype=int), np.array([], dtype=int)))
    with pytest.raises(ValueError, match="shape"):
        accuracy(np.array([1, 0]), np.array([1]))


def test_f1_matches_precision_recall_definition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels, pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        tp = int(((pred == 1) & (labels == 1)).sum())
        p, r = tp / max((pred == 1).sum(), 1), tp / max((labels == 1).sum(), 1)
        expected = 2 * p * r / (p + r) if p + r else 0.0
        assert f1_score(pred, labels) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "labels", "expected"),
    [
        ([1, 1, 0, 0], [1, 0, 1, 0], 0.5),  # tp=1, fp=1, fn=1
        ([1, 1], [1, 1], 1.0),
        ([0, 0], [0, 0], 0.0),  # no positives anywhere: defined as 0, not NaN
        ([1, 1], [0, 0], 0.0),  # only false positives
        ([0, 0], [1, 1], 0.0),  # only false negatives
        ([], [], 0.0),
    ],
)
def test_f1_edge_cases(pred, labels, expected):
    assert f1_score(np.array(pred, dtype=int), np.array(labels, dtype=int)) == expected


def test_f1_positive_class_argument():
    assert f1_score(np.array([0, 0, 1]), np.array([0, 1, 1]), positive=0) == pytest.approx(2 / 3)


def test_split_metrics():
    out = split_metrics(np.array([1, 0, 1]), np.array([1, 1, 1]), ("accuracy", "f1"))
    assert out == {"accuracy": pytest.approx(2 / 3), "f1": pytest.approx(0.8)}


def test_docstring_examples():
    """The small pure functions carry examples in their docstrings; keep them true."""
    import featherweight_core.atomic as atomic
    import featherweight_core.data.synthetic as synthetic
    import featherweight_core.students.distill as distill
    from featherweight_core.compression import prune

    for mod in (measure, distill, synthetic, atomic, prune):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, mod.__name__


def _model(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_student(
        StudentConfig(**{"arch": "bilstm", "embedding": "bpe", "emb_dim": 8, "num_labels": 2, "vocab_size": 100, **kw})
    )


def test_param_counts_groups_and_nonzero():
    model = _model()
    counts = param_counts(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["embedding"] == 101 * 8
    assert counts["nonzero"] == counts["total"] - 8  # padding row
    with torch.no_grad():
        model.classifier[1].weight[:, :10] = 0
    assert param_counts(model)["nonzero"] == counts["total"] - 8 - 10 * model.classifier[1].weight.shape[0]


def test_disk_size_is_the_saved_state_dict():
    model = _model()
    sizes = disk_size(model)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert sizes["disk_bytes"] == len(buf.getvalue())
    assert sizes["gzip_bytes"] == len(gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))
    assert sizes["gzip_bytes"] < sizes["disk_bytes"]
    assert sizes["disk_bytes"] > 4 * param_counts(model)["total"]  # float32 weights plus the zip container


def test_gzip_rewards_sparsity():
    dense, sparse = _model(), _model()
    with torch.no_grad():
        for p in sparse.parameters():
            p[torch.rand_like(p) < 0.9] = 0
    assert disk_size(sparse)["disk_bytes"] == disk_size(dense)["disk_bytes"]
    assert disk_size(sparse)["gzip_bytes"] < 0.5 * disk_size(dense)["gzip_bytes"]


def test_disk_size_parallel_calls_use_unique_temp_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        seen.append(path)
        return fd, path

    monkeypatch.setattr(measure.tempfile, "mkstemp", recording_mkstemp)
    models = [_model(seed=i, emb_dim=4 + i) for i in range(8)]
    serial = [disk_size(m) for m in models]
    seen.clear()
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(disk_size, models * 3))
    assert parallel == serial * 3
    assert len(seen) == len(set(seen)) == 24
    assert list(tmp_path.iterdir()) == []  # every temp file removed


def test_size_report_keys():
    report = size_report(_model())
    assert set(report) == {"params", "disk_bytes", "gzip_bytes"}
    assert set(report["params"]) == {"total", "embedding", "encoder", "classifier", "nonzero"}


def _tiny_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 3))
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def test_saved_model_sizes_agree_for_safetensors_and_pytorch_bin(tmp_path):
    from safetensors.torch import save_file

    state = _tiny_state_dict()
    n = sum(t.numel() for t in state.values())
    (tmp_path / "st").mkdir()
    (tmp_path / "bin").mkdir()
    save_file(state, tmp_path / "st" / "model.safetensors")
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    for d, name in ((tmp_path / "st", "model.safetensors"), (tmp_path / "bin", "pytorch_model.bin")):
        raw = (d / name).read_bytes()
        sizes = measure.saved_model_sizes(d)
        assert sizes == {"params": n, "disk_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9))}
        assert measure.saved_model_sizes(d / name) == sizes  # the weights file itself measures the same
        assert sizes["gzip_bytes"] == measure.gzip_bytes(raw)


def test_saved_model_sizes_counts_tied_weights_once(tmp_path):
    shared = torch.randn(10, 4)
    torch.save({"embed.weight": shared, "decoder.weight": shared, "bias": torch.zeros(10)}, tmp_path / "m.bin")
    assert measure.saved_model_sizes(tmp_path / "m.bin")["params"] == 50


def test_saved_model_sizes_prefers_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2, 3)}, tmp_path / "model.safetensors")
    torch.save({"w": torch.zeros(7)}, tmp_path / "pytorch_model.bin")
    assert measure.saved_model_sizes(tmp_path)["params"] == 6


def test_saved_model_sizes_bad_paths_are_user_errors(tmp_path):
    from featherweight_core.errors import InputFileError, UserError

    with pytest.raises(InputFileError, match=f"{tmp_path}: no model weights") as e:
        measure.saved_model_sizes(tmp_path)
    assert "model.safetensors" in str(e.value) and "pytorch_model.bin" in str(e.value)
    with pytest.raises(InputFileError, match="no such model directory"):
        measure.saved_model_sizes(tmp_path / "missing")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(measure.WeightsFileError, match="not a safetensors file") as e:
        measure.saved_model_sizes(tmp_path)
    assert isinstance(e.value, UserError)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_text("not a pickle")
    with pytest.raises(measure.WeightsFileError, match="not a readable PyTorch weights file"):
        measure.saved_model_sizes(tmp_path)


def test_student_sizes_use_the_same_gzip_measure():
    model = build_student(StudentConfig("ffn", "hash", 8, 2, vocab_size=100).resolved(), 100)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert disk_size(model)["gzip_bytes"] == measure.gzip_bytes(buf.getvalue())


# ---------------------------------------------------------------- macro F1 and per-class metrics


@pytest.mark.parametrize(
    "pred, labels, n, expect",
    [
        # class 0: P 1/2 R 1 F1 2/3; class 1: P 1 R 1/2 F1 2/3; class 2: F1 1 -> (2/3 + 2/3 + 1) / 3
        ([0, 0, 1, 2], [0, 1, 1, 2], 3, 7 / 9),
        ([1, 1, 0, 0], [1, 0, 1, 0], 2, 0.5),
        ([0, 0, 0, 0], [0, 0, 1, 1], 2, (2 / 3 + 0.0) / 2),  # class 1 never predicted: F1 0
        ([0, 1], [0, 1], 4, 0.5),  # classes 2, 3 absent and never predicted count as 0
    ],
)
def test_macro_f1_hand_computed(pred, labels, n, expect):
    from featherweight_core.students.measure import macro_f1

    assert macro_f1(np.array(pred), np.array(labels), n) == pytest.approx(expect)


def test_per_class_metrics_confusion_and_zero_division():
    from featherweight_core.students.measure import per_class_metrics

    pred, labels = np.array([0, 2, 2, 1, 0, 0]), np.array([0, 0, 2, 1, 1, 0])
    m = per_class_metrics(pred, labels, ("neg", "neu", "pos", "unused"))
    assert m["labels"] == ["neg", "neu", "pos", "unused"]
    assert m["confusion"] == [[2, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]  # rows true, cols predicted
    assert m["support"] == [3, 2, 1, 0]
    assert m["precision"] == pytest.approx([2 / 3, 1.0, 0.5, 0.0])
    assert m["recall"] == pytest.approx([2 / 3, 0.5, 1.0, 0.0])
    assert m["f1"] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 0.0])
    assert json.loads(json.dumps(m)) == m  # plain JSON values


# ---- will it fit: parameter counts without allocating, against the machine's memory


@pytest.mark.parametrize("arch", ["bilstm", "rnn", "ffn"])
@pytest.mark.parametrize("embedding", ["bpe", "hash", "char"])
@pytest.mark.parametrize("pair", [False, True])
def test_student_param_counts_equal_the_built_students(arch, embedding, pair):
    cfg = StudentConfig(arch, embedding, 12, 3, pair=pair, vocab_size=300)
    built = param_counts(build_student(cfg))
    assert measure.student_param_counts(cfg) == {k: built[k] for k in ("total", "embedding", "encoder", "classifier")}
    assert measure.student_param_counts(cfg, num_embeddings=50) == {
        k: v for k, v in param_counts(build_student(cfg, 50)).items() if k != "nonzero"
    }


def test_counting_a_huge_student_allocates_nothing():
    # 6.2e15 parameters (25 PB of float32) counted from shapes only
    counts = measure.student_param_counts(StudentConfig("bilstm", "bpe", 10**12, 2))
    assert counts["total"] == 6_201_000_000_243_002
    assert counts["embedding"] == (measure.vocab.DEFAULT_VOCAB_SIZE + 1) * 10**12
    with pytest.raises(measure.TooLargeError, match=r"embedding dim 10{20} and 35 embedding rows has more than 2\^63"):
        measure.student_param_counts(StudentConfig("rnn", "char", 10**20, 2))


def test_check_student_fits_bounds_four_float32_copies_for_training():
    cfg = StudentConfig("ffn", "hash", 8, 2, vocab_size=100)
    total = measure.student_param_counts(cfg)["total"]
    need = total * measure.FLOAT_BYTES * measure.TRAINING_COPIES
    assert measure.check_student_fits(cfg, "x", memory=need)["total"] == total
    with pytest.raises(measure.TooLargeError) as e:
        measure.check_student_fits(cfg, "--dim 8", memory=need - 1)
    assert str(e.value) == (
        f"--dim 8: a student of {total:,} parameters needs about {measure.human_bytes(need)} (4 float32 copies:"
        f" weights, gradients and 2 optimizer states), more than this machine's {measure.human_bytes(need - 1)} of memory"
    )
    measure.check_student_fits(cfg, "x", copies=measure.MEASURING_COPIES, memory=need - 1)  # 3 copies fit
    assert isinstance(e.value, measure.ConfigError)  # a UserError: one error line on the command line


def test_check_examples_fit_and_memory_bytes():
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < measure.memory_bytes() <= total
    measure.check_examples_fit(1000, "n", memory=1000 * measure.EXAMPLE_BYTES)
    with pytest.raises(measure.TooLargeError, match=r"^n: 1,001 examples need at least 200\.2 KB in memory"):
        measure.check_examples_fit(1001, "n", memory=1000 * measure.EXAMPLE_BYTES)
    assert measure.human_bytes(999) == "999 B" and measure.human_bytes(2.5e12) == "2.5 TB"
