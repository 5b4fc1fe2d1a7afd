"""export_model round trips: float students as ONNX, pruned + quantized students as TorchScript (the fallback), a
fine-tuned teacher directory and an int8 compressed-teacher directory; the standalone encoder and the artefact run in
a subprocess without the project; size and prediction mismatches fail and leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from featherweight_core.data.encoders import build_encoder
from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.errors import ConfigError, InputFileError, UserError
from featherweight_core.export.encoding import ENCODER_FILE
from featherweight_core.export.exporter import EXPORT_META, ONNX_FILE, TORCHSCRIPT_FILE, export_model, verify_artefact
from featherweight_core.export.parity import onnx_runner
from featherweight_core.export.sources import ExportError, measure_source
from featherweight_core.export.sources import load_source as _load_source
from featherweight_core.pipeline.checkpoint import save_checkpoint, save_compressed
from featherweight_core.pipeline.compress import QuantConfig, compress_student
from featherweight_core.pipeline.prepare import encode_split
from featherweight_core.students.distill import DistillConfig
from featherweight_core.students.models import StudentConfig, build_student
from tests.featherweight_core.export.students import (
    META,
    TASK,
    bpemb_vs1000,
    make_bpe_student,
    make_compressed,
    make_student,
)

# texts the encoders must agree on beyond the synthetic ones: accents, digits, punctuation, non-Latin, empty
ODD_TEXTS = ["Café déjà vu!", "", "   ", "123 numbers, 4.5 and 007", "naïve — “quotes” ¿qué?", "日本語 text", "A\tB"]


STANDALONE = r"""
import json, sys
from pathlib import Path
art = Path(sys.argv[1])
sys.path.insert(0, str(art))
import numpy as np
meta = json.loads((art / "featherweight_export.json").read_text())
texts = json.load(sys.stdin)
out = {}
if (art / "encode.py").is_file():
    import encode
    out["ids"] = [[encode.encode(f) for f in t] for t in texts]
    inputs = [encode.batch([t]) for t in texts]
else:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(art))
    names = [i["name"] for i in meta["inputs"]]
    inputs = []
    for t in texts:
        enc = tok(*t, truncation=True, max_length=meta["max_length"], return_tensors="np")
        inputs.append({n: enc[n].astype(np.int64) for n in names})
names = [i["name"] for i in meta["inputs"]]
if meta["format"] == "onnx":
    import onnxruntime as ort
    session = ort.InferenceSession(str(art / meta["model_file"]), providers=["CPUExecutionProvider"])
    logits = [session.run(["logits"], x)[0][0] for x in inputs]
else:
    import torch
    model = torch.jit.load(str(art / meta["model_file"]))
    with torch.no_grad():
        logits = [model(*[torch.from_numpy(x[n]) for n in names])[0].numpy() for x in inputs]
out["logits"] = np.stack(logits).tolist()
out["project_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("featherweight_core", "sweep", "db"))
print(json.dumps(out))
"""


def run_standalone(artefact: Path, texts: list[tuple[str, ...]]) -> dict:
    """The artefact and its encoder in ``python -I`` (no project directory, PYTHONPATH or user site on sys.path),
    one example at a time."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", STANDALONE, str(artefact)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=artefact,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@torch.no_grad()
def one_by_one(model, cfg, texts) -> np.ndarray:
    enc = build_encoder(cfg.embedding, cfg.vocab_size)
    out = []
    for t in texts:
        ids = torch.from_numpy(enc.encode(t[0]).astype(np.int64))[None]
        out.append(model(ids, torch.tensor([ids.shape[1]]))[0].numpy())
    return np.stack(out)


@pytest.mark.parametrize("arch,emb", [("bilstm", "char"), ("rnn", "hash"), ("ffn", "hash")])
def test_float_student_round_trip_onnx(tmp_path, data, arch, emb):
    path, model, cfg = make_student(tmp_path, arch, emb)
    recorded = measure_source(_load_source(path))
    rep = export_model(path, tmp_path / "out", data, recorded=recorded)
    out = tmp_path / "out"
    assert rep.format == "onnx" and rep.fallback_reason is None
    assert rep.examples_checked == 40 and rep.predictions_agree == 1.0 and rep.max_abs_logit_diff < 1e-4
    assert rep.recorded_size_check == {k: (v, v) for k, v in recorded.items()}
    assert set(rep.files) == {ONNX_FILE, EXPORT_META, ENCODER_FILE}
    assert rep.artefact_bytes == sum((out / f).stat().st_size for f in rep.files)
    meta = json.loads((out / EXPORT_META).read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["encoding"]["kind"] == emb
    assert [i["name"] for i in meta["inputs"]] == ["ids", "lengths"]
    assert meta["inputs"][0]["shape"] == (["batch", "time", 3] if emb == "hash" else ["batch", "time"])
    texts = [t for t in data.splits["validation"].texts[:20]] + [(t,) for t in ODD_TEXTS]
    got = run_standalone(out, texts)
    assert got["project_imported"] == []
    enc = build_encoder(emb, cfg.vocab_size)
    assert got["ids"] == [[enc.encode(t[0]).tolist()] for t in texts]  # the standalone encoder is the project's
    np.testing.assert_allclose(np.array(got["logits"]), one_by_one(model, cfg, texts), atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


@pytest.fixture(scope="module")
def quantized_bilstm(tmp_path_factory, data):
    return make_compressed(tmp_path_factory.mktemp("qbilstm"), data, "bilstm", "char", QuantConfig())


def _quantized_case(tmp_path, data, quantized_bilstm, case):
    if case == "bilstm":
        return quantized_bilstm
    if case == "rnn-static":
        return make_compressed(tmp_path, data, "rnn", "hash", QuantConfig(static_classifier=True))
    if case == "ffn-coded":
        return make_compressed(tmp_path, data, "ffn", "hash", QuantConfig(importance_bits=4))
    if case == "bilstm-hash-float-encoder":  # its gzip size, measured again, can move by a byte: not compared
        return make_compressed(tmp_path, data, "bilstm", "hash", QuantConfig(encoder=False))[0], None
    # max pooling over the rewritten int8 LSTM / Elman RNN
    return make_compressed(tmp_path, data, case.split("-")[0], "char", QuantConfig(), pooling="max")


@pytest.mark.parametrize(
    "case", ["bilstm", "rnn-static", "ffn-coded", "bilstm-max", "rnn-max", "bilstm-hash-float-encoder"]
)
def test_pruned_quantized_student_exports_as_int8_onnx(tmp_path, data, quantized_bilstm, case):
    path, recorded = _quantized_case(tmp_path, data, quantized_bilstm, case)
    out = tmp_path / "out"
    rep = export_model(path, out, data, recorded=recorded)
    assert rep.format == "onnx" and rep.precision == "int8" and rep.fallback_reason is None
    assert rep.check_batch_size == 1 and rep.examples_checked == 40
    # two int8 kernels round differently: counted, and within the tolerance
    assert rep.predictions_disagree <= 0.01 * 40 and rep.predictions_agree == 1 - rep.predictions_disagree / 40
    assert 0 < rep.max_abs_logit_diff < 0.05
    assert set(rep.recorded_size_check) == ({"params", "disk_bytes", "gzip_bytes"} if recorded else set())
    assert set(rep.files) == {ONNX_FILE, EXPORT_META, ENCODER_FILE}
    meta = json.loads((out / EXPORT_META).read_text())
    assert meta["precision"] == "int8" and meta["source"]["quantized"] is True
    assert meta["check"]["predictions_disagree"] == rep.predictions_disagree and meta["check"]["max_disagree"] == 0.01
    assert (
        meta["model_bytes"] == (out / ONNX_FILE).stat().st_size and 0 < meta["model_gzip_bytes"] < meta["model_bytes"]
    )
    import onnx

    graph = onnx.load(str(out / ONNX_FILE)).graph
    nodes = [n.op_type for n in graph.node]
    ops = set(nodes)
    assert ops & {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLSTM"}
    src = _load_source(path)
    model, cfg = src.model, src.student_cfg
    if case != "bilstm-hash-float-encoder":  # a float encoder stays float
        assert "LSTM" not in ops
        # few nodes: no per-step loop, no shape arithmetic (but the time axis of a max-pooling mask); each
        # recurrent layer is one node
        assert not ops & {"Loop", "If", "GatherElements", "Reshape"}
        assert cfg.pooling == "max" or "Shape" not in ops
        recurrent = {"bilstm": "DynamicQuantizeLSTM", "rnn": "RNN"}.get(cfg.arch)
        assert recurrent is None or nodes.count(recurrent) == 1
        for node in (n for n in graph.node if n.op_type == recurrent):  # only the states the pooling reads
            out_y, out_last = node.output[0], node.output[1]
            assert (bool(out_y), bool(out_last)) == (cfg.pooling == "max", cfg.pooling == "last")
            assert list(node.output[2:]) in ([], [""])
        # the layer reads each text's own length: a padded batch gives each row what that text alone gives (up to
        # the per-call activation range, which the batch shares)
        run = onnx_runner(out / ONNX_FILE)
        enc = build_encoder(cfg.embedding, cfg.vocab_size)
        texts = data.splits["validation"].texts[:6]
        rows = [torch.from_numpy(enc.encode(t[0]).astype(np.int64)) for t in texts]
        ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        lengths = torch.tensor([len(r) for r in rows])
        assert len(set(lengths.tolist())) > 1
        alone = np.concatenate([run((r[None], torch.tensor([len(r)]))) for r in rows])
        np.testing.assert_allclose(run((ids, lengths)), alone, atol=0.02)
    if case == "bilstm":  # without the project: onnxruntime and the standalone encoder, unchanged
        texts = data.splits["validation"].texts[:15]
        got = run_standalone(out, texts)
        assert got["project_imported"] == []
        np.testing.assert_allclose(np.array(got["logits"]), one_by_one(model, cfg, texts), atol=0.05)
    assert verify_artefact(out, path, data)[0] == 40


@pytest.mark.parametrize("case", ["bilstm", "rnn-static", "ffn-coded", "bilstm-max", "rnn-max"])
def test_pruned_quantized_student_as_torchscript(tmp_path, data, quantized_bilstm, case):
    path, recorded = _quantized_case(tmp_path, data, quantized_bilstm, case)
    out = tmp_path / "out"
    # default for quantized models: one example at a time. The rewritten int8 LSTM is exact only there (in a padded
    # batch its padding rows enter the dynamic activation ranges: up to 1e-3 apart with max pooling); the others are
    # exact in batches too
    batch_size = None if case.startswith("bilstm") else 16
    rep = export_model(path, out, data, fmt="torchscript", recorded=recorded, batch_size=batch_size)
    assert rep.format == "torchscript" and rep.fallback_reason is None and rep.precision == "int8"
    assert rep.check_batch_size == (batch_size or 1) and rep.predictions_agree == 1.0 and rep.max_abs_logit_diff < 1e-5
    assert set(rep.recorded_size_check) == {"params", "disk_bytes", "gzip_bytes"}
    assert TORCHSCRIPT_FILE in rep.files and ONNX_FILE not in rep.files
    meta = json.loads((out / EXPORT_META).read_text())
    assert meta["source"]["quantized"] is True and meta["check"]["max_disagree"] == 0.0
    src = _load_source(path)
    model, cfg = src.model, src.student_cfg
    if case == "bilstm":  # TorchScript without the project: torch.jit.load and the standalone encoder
        texts = data.splits["validation"].texts[:15]
        got = run_standalone(out, texts)
        assert got["project_imported"] == []
        np.testing.assert_allclose(np.array(got["logits"]), one_by_one(model, cfg, texts), atol=1e-5)
    # the traced model is not fixed to the example's batch or length
    loaded = torch.jit.load(str(out / TORCHSCRIPT_FILE))
    ids = torch.randint(1, 30, (5, 11, 3) if cfg.embedding == "hash" else (5, 11))
    assert loaded(ids, torch.tensor([11, 3, 7, 1, 11])).shape == (5, 2)


def test_int8_onnx_checked_against_other_weights_names_the_counts(tmp_path, data, quantized_bilstm):
    """The int8 tolerance bounds disagreements: an int8 artefact checked against another int8 model fails with the
    counts; a bad tolerance is a one-line error; nothing is written."""
    path, _ = quantized_bilstm
    export_model(path, tmp_path / "out", data)
    other, _ = make_compressed(tmp_path, data, "bilstm", "char", QuantConfig(), seed=3)
    with pytest.raises(ExportError, match=r"int8 ONNX artefact's prediction differs .* on \d+ of 40 dev examples"):
        verify_artefact(tmp_path / "out", other, data)
    for bad in (-0.1, 1.5, "x", True):
        with pytest.raises(ConfigError, match="max_disagree must be a fraction in"):
            export_model(path, tmp_path / "out2", data, max_disagree=bad)
    assert not (tmp_path / "out2").exists()


def test_int8_lstm_is_written_with_the_int8_models_own_weights(tmp_path, data, quantized_bilstm):
    """The int8 LSTM node holds PyTorch's int8 weight codes and scales as they are (in ONNX's layout and gate order),
    not weights quantized a second time; each is stored once, as int8."""
    import onnx
    from onnx import numpy_helper

    path, _ = quantized_bilstm
    export_model(path, tmp_path / "out", data)
    graph = onnx.load(str(tmp_path / "out" / ONNX_FILE)).graph
    (node,) = [n for n in graph.node if n.op_type == "DynamicQuantizeLSTM"]
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    w, r, w_scale, w_zero, r_scale, r_zero = (stored[node.input[i]] for i in (1, 2, 8, 9, 10, 11))
    assert w.dtype == r.dtype == np.int8 and not w_zero.any() and not r_zero.any()
    rnn = _load_source(path).model.encoder.rnn
    H = rnn.hidden_size
    weights = rnn._weight_bias()["weight"]
    gates = np.r_[0:H, 3 * H : 4 * H, H : 3 * H]  # PyTorch's i, f, g, o as ONNX's i, o, f, c
    for d, suffix in enumerate(("", "_reverse")):
        for codes, scales, kind in ((w, w_scale, "ih"), (r, r_scale, "hh")):
            q = weights[f"weight_{kind}_l0{suffix}"]
            np.testing.assert_array_equal(codes[d], q.int_repr().numpy()[gates].T)
            assert scales[d] == np.float32(q.q_scale())
    floats = [a for a in stored.values() if a.dtype == np.float32]
    assert max(a.size for a in floats) < r.size  # no float copy of the weights


def test_prediction_mismatch_is_an_error_naming_the_counts(tmp_path, data):
    """An artefact checked against another model (same architecture, other weights) disagrees."""
    path, _, _ = make_student(tmp_path, "ffn", "hash", seed=0)
    other, _, _ = make_student(tmp_path, "ffn", "hash", seed=1)
    export_model(path, tmp_path / "out", data)
    assert verify_artefact(tmp_path / "out", path, data)[0] == 40
    with pytest.raises(ExportError, match=r"ONNX artefact's prediction differs from the PyTorch model's on \d+ of 40"):
        verify_artefact(tmp_path / "out", other, data)
    with pytest.raises(InputFileError, match="not an exported artefact"):
        verify_artefact(tmp_path, path, data)


def test_changed_checkpoint_fails_the_size_check_before_writing(tmp_path, data):
    path, model, cfg = make_student(tmp_path, "ffn", "hash")
    recorded = measure_source(_load_source(path))
    with torch.no_grad():
        model.classifier[1].weight[:, :4] = 0.0  # pruned after it was recorded
    save_checkpoint(path, model, cfg, 200, META)
    now = measure_source(_load_source(path))
    assert now["gzip_bytes"] != recorded["gzip_bytes"]
    with pytest.raises(ExportError, match="changed since it was recorded") as e:
        export_model(path, tmp_path / "out", data, recorded=recorded)
    assert f"gzip_bytes recorded {recorded['gzip_bytes']:,}, now {now['gzip_bytes']:,}" in str(e.value)
    assert "disk_bytes" not in str(e.value)  # only the measures that differ are named
    assert not (tmp_path / "out").exists()


def test_recorded_task_and_data_are_used_without_task_data(tmp_path):
    path, _, _ = make_student(tmp_path, "ffn", "char")
    rep = export_model(path, tmp_path / "out")
    assert rep.examples_checked == 500  # the synthetic task's dev split, as the checkpoint records it
    assert json.loads((tmp_path / "out" / EXPORT_META).read_text())["task"] == "synthetic"


def test_bad_input_is_a_user_error_and_writes_nothing(tmp_path, data):
    path, _, _ = make_student(tmp_path, "ffn", "char")
    with pytest.raises(InputFileError, match="no such checkpoint"):
        export_model(tmp_path / "missing.pt", tmp_path / "a", data)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pt"):
        export_model(tmp_path / "junk.pt", tmp_path / "a", data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="not a model directory"):
        export_model(tmp_path / "empty", tmp_path / "a", data)
    with pytest.raises(ConfigError, match="format must be one of"):
        export_model(path, tmp_path / "a", data, fmt="tflite")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_model(path, busy, data)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"] and not (tmp_path / "a").exists()
    with pytest.raises(ExportError, match="holds the model being exported"):
        export_model(path, tmp_path, data, overwrite=True)
    assert path.is_file()
    rep = export_model(path, busy, data, overwrite=True)
    assert "keep.txt" not in rep.files and not (busy / "keep.txt").exists()
    pair = load_synthetic(get_task("synthetic_pair"), n_train=50, n_dev=10)
    with pytest.raises(ExportError, match="does not fit the student"):
        export_model(path, tmp_path / "b", pair)
    assert not (tmp_path / "b").exists()


def test_pair_student_round_trip(tmp_path):
    """Sentence-pair students take ids_a, lengths_a, ids_b, lengths_b; encode.batch takes (a, b) tuples."""
    task = get_task("synthetic_pair")
    pair = load_synthetic(task, n_train=50, n_dev=30)
    cfg = StudentConfig(
        arch="bilstm",
        embedding="hash",
        emb_dim=8,
        num_labels=task.num_labels,
        pair=True,
        vocab_size=200,
        hidden=8,
        classifier_hidden=8,
    ).resolved()
    torch.manual_seed(0)
    model = build_student(cfg).eval()
    meta = {"task": task.name, "task_spec": task.to_dict(), "data_source": "synthetic"}
    path = save_checkpoint(tmp_path / "pair.pt", model, cfg, 200, meta)
    rep = export_model(path, tmp_path / "out", pair)
    assert rep.format == "onnx" and rep.examples_checked == 30 and rep.predictions_agree == 1.0
    inputs = json.loads((tmp_path / "out" / EXPORT_META).read_text())["inputs"]
    assert [i["name"] for i in inputs] == ["ids_a", "lengths_a", "ids_b", "lengths_b"]
    texts = pair.splits["validation"].texts[:8]
    got = run_standalone(tmp_path / "out", texts)
    enc = build_encoder("hash", 200)
    assert got["ids"] == [[enc.encode(a).tolist(), enc.encode(b).tolist()] for a, b in texts]
    with torch.no_grad():
        want = []
        for a, b in texts:
            ia, ib = (torch.from_numpy(enc.encode(x).astype(np.int64))[None] for x in (a, b))
            want.append(model(ia, torch.tensor([ia.shape[1]]), ib, torch.tensor([ib.shape[1]]))[0].numpy())
    np.testing.assert_allclose(np.array(got["logits"]), np.stack(want), atol=1e-5)


@pytest.mark.parametrize("kind", ["bpe"])
def test_bpe_encoder_matches_the_project(tmp_path, shared_data, kind):
    """bpe: the artefact carries the sentencepiece model; encode.py reproduces BPEmb's preprocessing and ids."""
    bpemb_dir = bpemb_vs1000(shared_data)
    data = load_synthetic(TASK, n_train=50, n_dev=30)
    path = make_bpe_student(tmp_path / "bpe.pt")
    rep = export_model(path, tmp_path / "out", data, bpemb_dir=bpemb_dir)
    assert rep.format == "onnx" and "bpe.model" in rep.files
    texts = data.splits["validation"].texts[:10] + [(t,) for t in ODD_TEXTS]
    got = run_standalone(tmp_path / "out", texts)
    enc = build_encoder("bpe", 1000, 25, bpemb_dir)
    assert got["ids"] == [[enc.encode(t[0]).tolist()] for t in texts]


def test_the_docs_snippet_runs_as_written(tmp_path, data):
    """docs/export.md's first snippet (a student's ONNX artefact, onnxruntime + encode.py), copied as it is."""
    import ast
    import re

    doc = (Path(__file__).resolve().parents[3] / "docs" / "export.md").read_text()
    snippet = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    assert 'art = "exported/best"' in snippet
    path, _, _ = make_student(tmp_path, "ffn", "hash")
    export_model(path, tmp_path / "exported" / "best", data)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", snippet], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = ast.literal_eval(proc.stdout.strip().splitlines()[-1])  # the printed list of label names
    assert len(labels) == 2 and set(labels) <= {"negative", "positive"}


@pytest.mark.parametrize("arch", ["bilstm", "rnn", "ffn"])
def test_int8_pair_student_quantizes_both_texts_encoders(tmp_path, arch):
    """A sentence-pair student runs its encoder twice: both calls' layers are quantized, and the artefact passes."""
    import onnx

    task = get_task("synthetic_pair")
    pair = load_synthetic(task, n_train=60, n_dev=30)
    cfg = StudentConfig(
        arch=arch,
        embedding="hash",
        emb_dim=8,
        num_labels=task.num_labels,
        pair=True,
        vocab_size=200,
        hidden=8,
        classifier_hidden=8,
    ).resolved()
    torch.manual_seed(0)
    model = build_student(cfg).eval()
    enc = build_encoder("hash", 200)
    train = encode_split(enc, pair.splits["train"])
    evals = {"validation": encode_split(enc, pair.splits["validation"])}
    res = compress_student(model, cfg, None, QuantConfig(), train, evals, task, DistillConfig(alpha=1.0, batch_size=64))
    meta = {"task": task.name, "task_spec": task.to_dict(), "data_source": "synthetic"}
    path = save_compressed(tmp_path / "pair-int8.pt", res, meta)
    rep = export_model(path, tmp_path / "out", pair)
    assert rep.format == "onnx" and rep.precision == "int8" and rep.fallback_reason is None
    nodes = [n.op_type for n in onnx.load(str(tmp_path / "out" / ONNX_FILE)).graph.node]
    assert not {"LSTM", "Loop", "If"} & set(nodes)
    recurrent = {"bilstm": "DynamicQuantizeLSTM", "rnn": "RNN"}.get(arch)
    assert recurrent is None or nodes.count(recurrent) == 2
    if arch == "rnn":  # both texts' input projections are int8
        assert nodes.count("MatMulInteger") + nodes.count("DynamicQuantizeMatMul") == 4
