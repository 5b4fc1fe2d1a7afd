"""Metrics (accuracy, F1, edge cases) and size measures (params by group, disk bytes, gzip, parallel safety)."""

from __future__ import annotations

import doctest
import gzip
import io
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from featherweight_core import measure
from featherweight_core.measure import accuracy, disk_size, f1_score, param_counts, size_report, split_metrics
from featherweight_core.students import StudentConfig, build_student

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
    import featherweight_core.distill as distill
    import featherweight_core.synthetic as synthetic

    for mod in (measure, distill, synthetic):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, mod.__name__


def _model(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_student(StudentConfig(**{"arch": "bilstm", "embedding": "bpe", "emb_dim": 8, "num_labels": 2,
                                          "vocab_size": 100, **kw}))  # fmt: skip


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
