"""measure_speed: a student timed in PyTorch and as its ONNX artefact in ONNX Runtime, beside its float parent and a
teacher, interleaved; what each row holds (no timing is asserted: the machine may be loaded); the export command's
--speed; bad runtimes."""

from __future__ import annotations

import json

import pytest

from featherweight_core.export.sources import ExportError
from featherweight_core.export.speed import measure_speed
from featherweight_core.pipeline.compress import QuantConfig
from featherweight_core.students.latency import interleaved_times, latency_table, machine
from sweep.cli import main
from tests.featherweight_core.export.students import make_compressed, make_student


def _check(lat, model: str, runtime: str, precision: str) -> None:
    assert (lat.model, lat.runtime, lat.precision) == (model, runtime, precision)
    assert 0 < lat.p50_ms <= lat.p90_ms and lat.throughput > 0
    assert lat.threads == 1 and lat.examples == 20 and lat.batch_size == 40  # 40 dev examples: one batch
    assert lat.machine == machine() and "cores" in lat.machine


def test_student_beside_its_float_parent_and_the_teacher(tmp_path, data, teacher_dir):  # noqa: F811
    parent, _, _ = make_student(tmp_path, "bilstm", "hash")
    compressed, _ = make_compressed(tmp_path, data, "bilstm", "hash", QuantConfig())
    lats = measure_speed(
        compressed, task_data=data, teacher_dir=teacher_dir, n=20, min_seconds=0.05, others=[("float", parent)]
    )
    assert [(x.model, x.runtime) for x in lats] == [
        ("trial", "torch"),
        ("trial", "onnxruntime"),
        ("float", "torch"),
        ("float", "onnxruntime"),
        ("teacher", "torch"),
    ]
    _check(lats[0], "trial", "torch", "int8")
    _check(lats[1], "trial", "onnxruntime", "int8")
    _check(lats[2], "float", "torch", "float")
    _check(lats[4], "teacher", "torch", "float")
    table = latency_table(lats, lats[-1])
    assert len(table) == 7 and table[-1].endswith("1 thread(s)") and "1.00x" in table[-2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("featherweight-speed")]


def test_one_runtime_and_bad_runtimes(tmp_path, data):
    path, _, _ = make_student(tmp_path, "ffn", "char")
    lats = measure_speed(path, runtimes=["onnxruntime"], task_data=data, n=20, min_seconds=0.01)
    assert [(x.model, x.runtime, x.precision) for x in lats] == [("trial", "onnxruntime", "float")]
    for bad in (["tflite"], []):
        with pytest.raises(ExportError, match="runtimes must be some of"):
            measure_speed(path, runtimes=bad, task_data=data)


def test_interleaved_times_lets_the_calls_take_turns_a_block_each():
    seen: list[tuple[int, int]] = []
    times = interleaved_times(
        [lambda i: seen.append((0, i)), lambda i: seen.append((1, i))], range(3), min_seconds=0.0, warmup=1, block=2
    )
    assert seen[:2] == [(0, 0), (1, 0)]  # warm-up: the first item of each
    # each block: one untimed call on its first item, then the block back to back; then the other call's turn
    assert seen[2:] == [(0, 0), (0, 0), (0, 1), (1, 0), (1, 0), (1, 1), (0, 2), (0, 2), (1, 2), (1, 2)]
    assert [len(t) for t in times] == [3, 3]


def test_export_command_prints_the_same_figures(tmp_path, data, capsys):
    path, _ = make_compressed(tmp_path, data, "rnn", "char", QuantConfig())
    out = tmp_path / "art"
    # an untrained student: many logits near a tie, where the two int8 kernels' rounding can flip a prediction
    assert main(["export", "--model", str(path), "-o", str(out), "--speed", "--json", "--max-disagree", "0.1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "onnx" and report["precision"] == "int8" and report["max_disagree"] == 0.1
    assert [(x["model"], x["runtime"], x["precision"]) for x in report["speed"]] == [
        ("trial", "torch", "int8"),
        ("trial", "onnxruntime", "int8"),
    ]
    assert main(["export", "--model", str(path), "-o", str(tmp_path / "t"), "--teacher", str(tmp_path)]) == 2
    assert "--teacher times a teacher beside the model: it needs --speed" in capsys.readouterr().err
    assert main(["export", "--model", str(path), "-o", str(tmp_path / "m"), "--max-disagree", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-disagree 1.5" in err
    assert not (tmp_path / "t").exists() and not (tmp_path / "m").exists()


def test_compress_speed_prints_the_same_table(tmp_path, capsys):
    path, _, _ = make_student(tmp_path, "ffn", "hash")
    args = ["compress", str(path), "--quantize", "all", "--data", "synthetic", "--speed", "--quiet"]
    assert main([*args, "--json"]) == 0
    speed = json.loads(capsys.readouterr().out)["speed"]
    assert [(x["model"], x["runtime"], x["precision"]) for x in speed["latency"]] == [
        ("compressed", "torch", "int8"),
        ("compressed", "onnxruntime", "int8"),
        ("float", "torch", "float"),
        ("float", "onnxruntime", "float"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "CPU speed (float student and compressed one, interleaved):" in out and "speed-up" in out
    assert out.count("onnxruntime") == 2
