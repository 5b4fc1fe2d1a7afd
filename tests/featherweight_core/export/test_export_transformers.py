"""export_model round trips of transformers: a fine-tuned teacher directory as ONNX with its tokenizer (run in a
subprocess without the project), Theseus and BERT-Vision outputs as their methods save them (float -> ONNX, int8 ->
TorchScript, the fallback)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from featherweight_core.export.exporter import EXPORT_META, ONNX_FILE, export_model
from tests.featherweight_core.export.test_export import run_standalone


def test_teacher_dir_round_trip_onnx_with_tokenizer(tmp_path, data, teacher_dir):
    from featherweight_core.students.measure import saved_model_sizes
    from featherweight_core.teacher.loading import load_classifier
    from featherweight_core.teacher.predict import predict_logits

    recorded = saved_model_sizes(teacher_dir)
    rep = export_model(teacher_dir, tmp_path / "out", data, recorded=recorded)
    out = tmp_path / "out"
    assert rep.format == "onnx" and rep.source_kind == "teacher" and rep.examples_checked == 40
    assert rep.predictions_agree == 1.0 and rep.max_abs_logit_diff < 1e-4
    assert {"tokenizer.json", "tokenizer_config.json", ONNX_FILE, EXPORT_META} <= set(rep.files)
    meta = json.loads((out / EXPORT_META).read_text())
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert meta["max_length"] == 48
    texts = data.splits["validation"].texts[:10]
    got = run_standalone(out, texts)
    assert got["project_imported"] == []
    model, tok = load_classifier(teacher_dir)
    want = predict_logits(model, tok, texts, batch_size=1, max_length=48, device="cpu")
    np.testing.assert_allclose(np.array(got["logits"]), want, atol=1e-4)


@pytest.mark.parametrize(
    "method,quantize", [("theseus", False), ("theseus", True), ("bertvision", False), ("bertvision", True)]
)
def test_compressed_teacher_round_trip(tmp_path, data, teacher_dir, method, quantize):
    """Theseus successors and BERT-Vision models as their methods save them: float -> ONNX, int8 -> TorchScript;
    the sizes the method reported are the ones the export measures."""
    if method == "theseus":
        from featherweight_core.teacher.theseus import compress_theseus
        from featherweight_core.teacher.theseus_config import TheseusConfig

        cfg = TheseusConfig(
            epochs=1,
            batch_size=32,
            lr=2e-3,
            max_length=48,
            device="cpu",
            warmup_ratio=0.0,
            max_train_examples=64,
            quantize=quantize,
        )
        result = compress_theseus(teacher_dir, data, tmp_path / "src", cfg)
    else:
        from featherweight_core.teacher.bertvision import train_bertvision
        from featherweight_core.teacher.bertvision_config import BertVisionConfig

        cfg = BertVisionConfig(layers=1, epochs=1, device="cpu", max_train_examples=64, quantize=quantize)
        result = train_bertvision(teacher_dir, data, tmp_path / "src", cfg)
    recorded = {"params": result.params, "disk_bytes": result.disk_bytes, "gzip_bytes": result.gzip_bytes}
    # BERT-Vision float: the task and data its directory (or its teacher's) records; the others: the test's dev split
    rep = export_model(
        tmp_path / "src",
        tmp_path / "out",
        None if (method, quantize) == ("bertvision", False) else data,
        recorded=recorded,
    )
    assert rep.examples_checked == (500 if (method, quantize) == ("bertvision", False) else 40)
    assert rep.source_kind == "compressed_teacher" and rep.predictions_agree == 1.0
    assert rep.recorded_size_check == {k: (v, v) for k, v in recorded.items()}
    if quantize:
        assert rep.format == "torchscript" and "ONNX export failed" in rep.fallback_reason
        assert rep.check_batch_size == 1 and rep.max_abs_logit_diff < 1e-5
    else:
        assert rep.format == "onnx" and rep.fallback_reason is None and rep.max_abs_logit_diff < 1e-4
    assert "tokenizer.json" in rep.files
    meta = json.loads((tmp_path / "out" / EXPORT_META).read_text())
    assert meta["max_length"] == 48 and meta["labels"] == ["negative", "positive"]
