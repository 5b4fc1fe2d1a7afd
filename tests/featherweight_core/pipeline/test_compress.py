"""compress_student, save/load round trips, ideal-size accounting, and the ``featherweight compress`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from featherweight_core.compression.quantize import QuantizationError
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.checkpoint import load_checkpoint, load_compressed, save_checkpoint, save_compressed
from featherweight_core.pipeline.compress import PruneConfig, QuantConfig, compress_student
from featherweight_core.pipeline.prepare import prepare
from featherweight_core.pipeline.run import student_config_for
from featherweight_core.students.distill import DistillConfig, evaluate, predict_logits
from featherweight_core.students.measure import ideal_size, ideal_tensor_bytes, inference_speed, param_counts
from featherweight_core.students.models import build_student


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Tiny synthetic task: 300 training rows, the 500-row dev split."""
    task = get_task("synthetic")
    cache = tmp_path_factory.mktemp("cache")
    preps = {}
    for emb in ("hash", "char"):
        p = prepare(task, "synthetic", emb, 8, 200 if emb == "hash" else None, None, cache_dir=cache)
        preps[emb] = p
    return task, preps


def student(prep, arch, seed=0):
    cfg = student_config_for(prep, arch, hidden=8, classifier_hidden=8)
    torch.manual_seed(seed)
    return build_student(cfg, prep.num_embeddings).eval(), cfg


def train_rows(prep, n=300):
    return prep.train.take(np.arange(n))


CASES = [
    ("bilstm", "char", PruneConfig(), QuantConfig()),
    ("rnn", "hash", PruneConfig(method="magnitude", scope="global", sparsity=0.4), QuantConfig(static_classifier=True)),
    ("ffn", "hash", None, QuantConfig(encoder=False)),
    ("ffn", "hash", None, QuantConfig(importance_bits=4)),
    ("rnn", "hash", PruneConfig(method="topv", targets={"hash_emb": 0.3}), QuantConfig(importance_bits=6)),
    ("rnn", "char", PruneConfig(method="movement", epochs=1), None),
]


@pytest.mark.parametrize("arch,emb,p,q", CASES)
def test_compress_and_round_trip(synthetic, tmp_path, arch, emb, p, q):
    task, preps = synthetic
    prep = preps[emb]
    model, cfg = student(prep, arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dcfg = DistillConfig(alpha=1.0, batch_size=64, seed=0)
    res = compress_student(model, cfg, p, q, train_rows(prep), prep.evals, task, dcfg)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # parent untouched
    assert set(res.metrics) == set(evaluate(model, prep.evals, task))
    assert set(res.sizes) == {"params", "nonzero_params", "disk_bytes", "gzip_bytes", "ideal_bytes"}
    assert res.sizes["params"]["total"] == param_counts(model)["total"]
    assert {"overall", "groups", "tensors", "embedding", "classifier"} <= set(res.sparsity)
    labels = res.describe()
    assert labels["prune"] == (p.describe(arch, emb) if p else "none")
    assert labels["quant"] == (q.describe(arch, emb) if q else "none")
    if q is not None:
        assert res.sizes["ideal_bytes"] < 0.7 * ideal_size(model)["ideal_bytes"]  # tiny: qparams weigh in
    path = save_compressed(tmp_path / "c.pt", res, {"task": task.name})
    loaded, lcfg, meta = load_compressed(path)
    assert lcfg == cfg and meta["task"] == task.name and meta["quant_label"] == labels["quant"]
    if q is not None:
        assert meta["quant"] == q.to_dict()  # importance_bits included: load rebuilds the same structure
        assert [type(m).__name__ for m in loaded.modules()] == [type(m).__name__ for m in res.model.modules()]
    ev = prep.evals["validation"]
    assert np.array_equal(predict_logits(loaded, ev), predict_logits(res.model, ev))  # identical, not just close
    assert evaluate(loaded, prep.evals, task) == res.metrics
    json.dumps(res.summary())


def test_static_quantized_classifier_calibrates_on_train_not_dev(synthetic, monkeypatch):
    task, preps = synthetic
    prep = preps["hash"]
    model, cfg = student(prep, "ffn")
    seen = []
    import featherweight_core.compression.quantize as qmod

    real = qmod._calibrate
    monkeypatch.setattr(qmod, "_calibrate", lambda m, split, c: (seen.append(split), real(m, split, c)))
    train = train_rows(prep)
    compress_student(model, cfg, None, QuantConfig(static_classifier=True), train, prep.evals, task)
    assert seen == [train]


def test_compress_refuses_a_quantized_model_and_an_empty_request(synthetic):
    task, preps = synthetic
    prep = preps["char"]
    model, cfg = student(prep, "bilstm")
    res = compress_student(model, cfg, None, QuantConfig(), train_rows(prep), prep.evals, task)
    with pytest.raises(QuantizationError, match="already quantized"):
        compress_student(res.model, cfg, None, QuantConfig(), train_rows(prep), prep.evals, task)
    with pytest.raises(ValueError, match="nothing to do"):
        compress_student(model, cfg, None, None, train_rows(prep), prep.evals, task)


def test_checkpoint_loaders_tell_formats_apart(synthetic, tmp_path):
    task, preps = synthetic
    prep = preps["hash"]
    model, cfg = student(prep, "rnn")
    fp = save_checkpoint(tmp_path / "f.pt", model, cfg, prep.num_embeddings, {"torch": torch.__version__})
    load_checkpoint(fp)  # a TorchVersion in meta must not break weights_only loading
    with pytest.raises(ValueError, match="use load_checkpoint"):
        load_compressed(fp)
    res = compress_student(model, cfg, None, QuantConfig(), train_rows(prep), prep.evals, task)
    cp = save_compressed(tmp_path / "c.pt", res)
    with pytest.raises(ValueError, match="load_compressed"):
        load_checkpoint(cp)


# -- ideal storage (thesis eq. 6.5-6.7) -------------------------------------------------------------------------


def test_ideal_tensor_bytes_by_hand():
    # 2-D, 100 floats: dense 400 bytes; COO (2 * 8 + 4) * nze -> COO wins below n / 5 = 20 non-zeros (eq. 6.7)
    assert ideal_tensor_bytes(100, 20, 2, 4) == {"dense": 400, "coo": 400, "bytes": 400, "format": "dense"}
    assert ideal_tensor_bytes(100, 10, 2, 4) == {"dense": 400, "coo": 200, "bytes": 200, "format": "coo"}
    # 3-D: n / 7 (thesis: 86% sparsity needed)
    assert ideal_tensor_bytes(700, 99, 3, 4)["format"] == "coo"
    assert ideal_tensor_bytes(700, 100, 3, 4)["format"] == "dense"
    # int8 values with 8-byte indices: COO needs < n / 17
    assert ideal_tensor_bytes(170, 9, 2, 1) == {"dense": 170, "coo": 153, "bytes": 153, "format": "coo"}
    assert ideal_tensor_bytes(10, 0, 1, 2)["bytes"] == 0


def test_ideal_size_of_hand_made_modules():
    m = nn.Module()
    m.a = nn.Linear(10, 10, bias=False)  # 100 weights
    with torch.no_grad():
        m.a.weight.zero_()
        m.a.weight[0, :5] = 1.0  # 5 non-zeros: COO (2*8+4)*5 = 100 < dense 400
    m.b = nn.Embedding(4, 5)  # dense 80 bytes
    rep = ideal_size(m)
    assert rep["tensors"]["a.weight"]["bytes"] == 100 and rep["tensors"]["a.weight"]["format"] == "coo"
    assert rep["tensors"]["b.weight"]["bytes"] == 80
    assert rep["ideal_bytes"] == 180 and rep["dense_bytes"] == 480
    # quantized: int8 elements + 8 bytes of scale / zero point per tensor (per row for embeddings)
    from torch.ao.quantization import quantize_dynamic

    q = quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    row = ideal_size(q)["tensors"]["a.weight"]
    assert (row["elem_bytes"], row["nonzero"], row["qparams"]) == (1, 5, 8)
    assert row["bytes"] == min(100, (2 * 8 + 1) * 5)
    from featherweight_core.compression.quantize import _quantize_embedding_table

    qe = _quantize_embedding_table(m.b)
    erow = ideal_size(qe)["tensors"]["weight"]
    assert (erow["bytes"], erow["qparams"]) == (20, 4 * 8)


def test_ideal_size_counts_importance_codes_at_their_bit_width():
    from featherweight_core.compression.quantize import CodedEmbedding, QuantizedHashEmbedding
    from featherweight_core.students.measure import coded_tables, stored_param_counts
    from featherweight_core.students.models import HashEmbedding

    src = nn.Embedding(30, 1)
    with torch.no_grad():  # three pruned scalars, the rest far enough from 0 not to be coded as 0
        src.weight.copy_(torch.tensor([0.0] * 3 + [-1.0, -0.6, 0.6, 1.2, 2.0] * 5 + [1.0, -1.0]).view(30, 1))
    m = nn.Module()
    m.imp = CodedEmbedding.from_float(src, 4)
    rep = ideal_size(m)
    # 30 codes x 4 bits = 15 bytes (dense: 27 non-zeros are far too many for COO), float32 scale and offset: 4 each
    assert rep["tensors"]["imp.codes"] == {
        "dense": 15,
        "coo": int(np.ceil((2 * 8 + 0.5) * 27)),
        "bytes": 15,
        "format": "dense",
        "numel": 30,
        "nonzero": 27,
        "ndim": 2,
        "elem_bytes": 0.5,
        "qparams": 0,
    }
    assert rep["tensors"]["imp.scale"]["bytes"] == 4 and rep["tensors"]["imp.offset"]["bytes"] == 4
    assert rep["ideal_bytes"] == 15 + 4 + 4
    m.imp = CodedEmbedding.from_float(src, 3)  # 90 bits -> 12 bytes (rounded up)
    assert ideal_size(m)["ideal_bytes"] == 12 + 8
    assert set(coded_tables(m)) == {"imp.codes"}
    counts = stored_param_counts(m)  # the codes are the weight; nonzero counts values that decode to non-zero
    assert (counts["total"], counts["nonzero"]) == (30, 27)

    # A whole quantized hash embedding: the importance table shrinks from 2 bytes (float16) to bits / 8 each.
    emb = HashEmbedding(100, 10, 8)  # 300 importance scalars, 10 x 8 buckets
    half = ideal_size(QuantizedHashEmbedding.from_float(emb))
    for bits in (8, 6, 4, 2):
        coded = ideal_size(QuantizedHashEmbedding.from_float(emb, bits))
        assert coded["tensors"]["importance.codes"]["bytes"] == 300 * bits // 8
        assert coded["tensors"]["buckets.weight"] == half["tensors"]["buckets.weight"]
        assert coded["ideal_bytes"] == half["ideal_bytes"] - 2 * 300 + 300 * bits // 8 + 8


def test_inference_speed_reports(synthetic):
    task, preps = synthetic
    prep = preps["char"]
    model, _ = student(prep, "ffn")
    s = inference_speed(model, prep.evals["validation"], 64, max_batches=3, min_seconds=0.0)
    assert s["batch_size"] == 64 and s["examples_per_second"] > 0 and s["ms_per_batch"] > 0


# -- CLI ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parent_ckpt(synthetic, tmp_path_factory):
    task, preps = synthetic
    prep = preps["hash"]
    model, cfg = student(prep, "bilstm")
    path = tmp_path_factory.mktemp("parent") / "student.pt"
    meta = {"task": task.name, "distill": DistillConfig(seed=0).to_dict(), "data_fingerprint": prep.data_fingerprint}
    return save_checkpoint(path, model, cfg, prep.num_embeddings, meta)


def cli(*args):
    from sweep.cli import main

    return main(["compress", *map(str, args)])


def test_cli_prunes_quantizes_and_saves(parent_ckpt, tmp_path, synthetic, capsys):
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    rc = cli(
        parent_ckpt,
        "--data",
        "synthetic",
        "--cache-dir",
        cache,
        "--prune",
        "topv",
        "--sparsity",
        "lstm=0.6,embedding=0.1",
        "--quantize",
        "all",
        "--output",
        out,
        "--json",
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["prune_label"] == "topv-local(lstm=0.6,linear=0.125,embedding=0.1)"
    assert summary["quant_label"] == "int8-dyn(enc,cls)+emb-u8/f16"
    assert summary["sparsity"]["groups"]["lstm"] == pytest.approx(0.6, abs=0.01)  # round(0.6 * n) per tensor
    assert summary["sizes"]["gzip_bytes"] < summary["float"]["sizes"]["gzip_bytes"]
    assert json.loads((out / "result.json").read_text())["metrics"] == summary["metrics"]
    model, _, meta = load_compressed(out / "compressed.pt")
    assert meta["prune"]["targets"] == {"lstm": 0.6, "embedding": 0.1}
    task, preps = synthetic
    assert evaluate(model, preps["hash"].evals, task) == summary["metrics"]


def test_cli_importance_bits(parent_ckpt, tmp_path, synthetic, capsys):
    out = tmp_path / "out"
    rc = cli(
        parent_ckpt,
        "--data",
        "synthetic",
        "--cache-dir",
        tmp_path / "cache",
        "--quantize",
        "all",
        "--importance-bits",
        "6",
        "--output",
        out,
        "--json",
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["quant_label"] == "int8-dyn(enc,cls)+emb-u8/u6" and summary["quant"]["importance_bits"] == 6
    assert summary["sizes"]["ideal_bytes"] < summary["float"]["sizes"]["ideal_bytes"]
    model, _, meta = load_compressed(out / "compressed.pt")
    assert meta["quant"]["importance_bits"] == 6 and model.embedding.importance.bits == 6
    task, preps = synthetic
    assert evaluate(model, preps["hash"].evals, task) == summary["metrics"]
    assert "--importance-bits {2..8,16}" in _help()


def _help() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        cli("--help")
    return buf.getvalue()


@pytest.mark.parametrize("value", ["9", "1", "0", "32", "x", "6.5"])
def test_cli_bad_importance_bits_is_an_argparse_error(parent_ckpt, capsys, value):
    with pytest.raises(SystemExit) as e:
        cli(parent_ckpt, "--quantize", "all", "--importance-bits", value)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--importance-bits: expected an integer in 2..8 or 16, got '{value}'" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prune", "topv", "--sparsity", "gru=0.5"], "error: unknown module group 'gru'"),
        (["--prune", "topv", "--sparsity", "lstm=1.0"], "must be a sparsity in [0, 1), got 1.0"),
        (["--prune", "topv", "--sparsity", "0.5"], "needs --scope global"),
        (["--sparsity", "lstm=0.5"], "need --prune METHOD"),
        ([], "nothing to do"),
        (["--prune", "movement", "--schedule", "post"], "movement pruning learns its masks"),
        (["--importance-bits", "4"], "--importance-bits 4 needs embedding quantization"),
        (["--quantize", "encoder,classifier", "--importance-bits", "4"], "--importance-bits 4 needs embedding"),
    ],
)
def test_cli_bad_arguments_exit_2_and_write_nothing(parent_ckpt, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert cli(parent_ckpt, "--data", "synthetic", "--output", out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_cli_refuses_to_quantize_a_compressed_student(parent_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        cli(
            parent_ckpt,
            "--data",
            "synthetic",
            "--cache-dir",
            tmp_path / "c",
            "--quantize",
            "all",
            "--output",
            out,
            "--quiet",
        )
        == 0
    )
    capsys.readouterr()
    assert cli(out / "compressed.pt", "--data", "synthetic", "--quantize", "all", "--output", tmp_path / "o2") == 2
    assert "compressed student" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_cli_unknown_quantize_part_is_an_argparse_error(parent_ckpt, capsys):
    with pytest.raises(SystemExit) as e:
        cli(parent_ckpt, "--quantize", "embeddings")
    assert e.value.code == 2
    assert "unknown part 'embeddings'" in capsys.readouterr().err
