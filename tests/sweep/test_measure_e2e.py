"""A real (small) sweep through Ray Tune with the spec's measure: key: every trial, distilled and compressed, gets its
CPU latency in PyTorch and ONNX Runtime recorded in the database, int8 for the quantized one."""

from __future__ import annotations

import pytest
import yaml

from db.store import ExperimentStore
from tests.sweep.cli_run import featherweight

pytestmark = pytest.mark.slow


def test_a_measured_sweep_records_latency_per_runtime(tmp_path):
    raw = {
        "name": "lat",
        "storage": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
        "tasks": {"synthetic": {"data_options": {"n_train": 300, "n_dev": 60}}},
        "grid": {
            "archs": ["bilstm"],
            "embeddings": ["hash"],
            "dims": [16],
            "vocab_sizes": [500],
            "alphas": [1.0],
            "seeds": [0],
        },
        "training": {"max_epochs": 1, "patience": 1},
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
        "compress": {
            "parents": {"top_k": 1},
            "search": {"num_samples": 1, "max_concurrent": 1, "seed": 0},
            "quantize": {"embedding": True, "encoder": True, "classifier": True},
        },
        "measure": {"latency": True, "runtimes": ["torch", "onnxruntime"]},
    }
    spec = tmp_path / "lat.yaml"
    spec.write_text(yaml.safe_dump(raw))
    r = featherweight("sweep", "run", str(spec), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    store = ExperimentStore(tmp_path / "runs" / "featherweight.duckdb", read_only=True)
    rows = store.query(
        "SELECT t.stage, l.* FROM latency l JOIN trials t USING (sweep, trial_id) ORDER BY t.stage, l.runtime"
    )
    got = [(r.stage, r.model, r.runtime, r.precision) for r in rows.itertuples()]
    assert got == [
        ("compress", "trial", "onnxruntime", "int8"),
        ("compress", "trial", "torch", "int8"),
        ("distill", "trial", "onnxruntime", "float"),
        ("distill", "trial", "torch", "float"),
    ]
    assert (rows.p50_ms > 0).all() and (rows.p90_ms >= rows.p50_ms).all() and (rows.throughput > 0).all()
    assert (rows.threads == 1).all() and rows.machine.str.contains("cores").all()
