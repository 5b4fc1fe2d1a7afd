"""Model directories load safely and completely: a weights pickle that names code is refused before anything of it
runs (one error naming the file), and a checkpoint that would leave tensors newly initialised (a config naming
another architecture, tensors missing) is refused naming them; a fine-tuning start may lack only its task head."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.taskdata import DataError
from featherweight_core.data.tasks import get_task
from featherweight_core.teacher.config import TeacherError
from featherweight_core.teacher.loading import load_classifier
from featherweight_core.teacher.modelfiles import check_model_files
from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_bert
from featherweight_core.teacher.softtargets import teacher_fingerprint
from featherweight_core.teacher.teacher_compression import COMPRESSED_META, INT8_WEIGHTS, CompressedTeacherError
from sweep.cli import main

TINY = SmallBertConfig(vocab_size=300, hidden=32, layers=2, heads=2, intermediate=64, max_length=64)


class _Payload:
    """Unpickling this creates the file ``marker``: proof that a loader ran the pickle's code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.fixture(scope="module")
def texts():
    data = load_synthetic(get_task("synthetic"), n_train=200, n_dev=20)
    return [row[0] for row in data.train.texts]


@pytest.fixture(scope="module")
def bert(tmp_path_factory, texts):
    """A complete tiny BERT sequence classifier (untrained: loading is what is tested)."""
    return build_small_bert(texts, tmp_path_factory.mktemp("bert") / "t", TINY)


def _copy(src, dst, mutate=None):
    shutil.copytree(src, dst)
    if mutate:
        mutate(dst)
    return dst


def _payload_bin(marker, zip_format: bool):
    def mutate(d):
        (d / "model.safetensors").unlink()
        if zip_format:
            torch.save({"bert.embeddings.word_embeddings.weight": _Payload(str(marker))}, d / "pytorch_model.bin")
        else:
            (d / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload(str(marker))}, protocol=2))

    return mutate


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "legacy-pickle"])
def test_a_pickle_payload_in_teacher_weights_never_runs(tmp_path, bert, zip_format):
    marker = tmp_path / "PWNED"
    d = _copy(bert, tmp_path / "t", _payload_bin(marker, zip_format))
    refused = r"pytorch_model\.bin: refused: its pickle names \w+\.open"
    with pytest.raises(TeacherError, match=refused):
        load_classifier(d)
    with pytest.raises(TeacherError, match=refused):
        load_classifier(d, num_labels=2)  # the fine-tuning path too
    with pytest.raises(DataError, match=refused):
        teacher_fingerprint(d)
    with pytest.raises(TeacherError, match=refused):
        check_model_files(d, TeacherError)
    assert not marker.exists()


def test_the_loader_itself_refuses_a_payload_in_one_line(tmp_path, bert):
    """Past the directory check (a loader called on a directory nobody checked): still one error, nothing run."""
    from transformers import AutoModelForSequenceClassification

    from featherweight_core.teacher.modelfiles import load_pretrained

    marker = tmp_path / "PWNED"
    d = _copy(bert, tmp_path / "t", _payload_bin(marker, True))
    with pytest.raises(TeacherError, match=r"pytorch_model\.bin: refused: its pickle names \w+\.open"):
        load_pretrained(AutoModelForSequenceClassification, d, TeacherError, "a sequence classifier")
    assert not marker.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["teacher", "logits", "--teacher", "T", "--task", "synthetic", "--no-progress", "--cache-dir", "cache"],
        ["teacher", "finetune", "--model", "T", "--task", "synthetic", "--output", "out", "--no-progress"],
        ["distill", "--task", "synthetic", "--teacher", "T", "--alpha", "0.5", "--embedding", "hash"]
        + ["--dim", "8", "--cache-dir", "cache"],
        ["theseus", "--teacher", "T", "--task", "synthetic", "--output", "out", "--no-progress"],
        ["bertvision", "--teacher", "T", "--task", "synthetic", "--output", "out", "--no-progress"],
        ["augment", "--task", "synthetic", "--output", "a.parquet", "--teacher", "T", "--no-progress"],
        ["augment", "--task", "synthetic", "--output", "a.parquet", "--mode", "fill-mask", "--mlm", "T"],
        ["export", "--model", "T", "--output", "out"],
    ],
    ids=["logits", "finetune", "distill", "theseus", "bertvision", "augment-teacher", "augment-mlm", "export"],
)
def test_every_command_loading_a_teacher_refuses_a_payload(tmp_path, bert, capsys, monkeypatch, command):
    marker = tmp_path / "PWNED"
    _copy(bert, tmp_path / "T", _payload_bin(marker, True))
    (tmp_path / "T" / "featherweight_teacher.json").write_text(json.dumps({"task": "synthetic"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    rc = main(command)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    assert "pytorch_model.bin: refused" in err
    assert not marker.exists()
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "home"))
    assert after == [p for p in before if not p.startswith("home")]


def _as_gpt2(d):
    config = json.loads((d / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2ForSequenceClassification"])
    (d / "config.json").write_text(json.dumps(config))


def _drop_tensors(d):
    state = load_file(str(d / "model.safetensors"))
    kept = {k: v for k, v in state.items() if "layer.1.attention.self" not in k}
    assert len(kept) == len(state) - 6
    save_file(kept, str(d / "model.safetensors"), metadata={"format": "pt"})


def test_a_config_naming_another_architecture_is_refused(tmp_path, bert):
    d = _copy(bert, tmp_path / "t", _as_gpt2)
    with pytest.raises(
        TeacherError, match=r"t: \d+ tensor\(s\) of the gpt2 model .* newly initialised \(.*transformer\..*not match"
    ):
        load_classifier(d)
    with pytest.raises(TeacherError, match="gpt2 model"):  # fine-tuning from it: the whole backbone would be new
        load_classifier(d, num_labels=2)


def test_weights_missing_tensors_are_refused_naming_them(tmp_path, bert):
    d = _copy(bert, tmp_path / "t", _drop_tensors)
    with pytest.raises(TeacherError) as e:
        load_classifier(d)
    message = str(e.value)
    assert "6 tensor(s) of the bert model" in message and "bert.encoder.layer.1.attention.self.key.bias" in message
    assert "\n" not in message
    with pytest.raises(TeacherError, match="6 tensor"):
        load_classifier(d, num_labels=2)  # a backbone tensor is never a fresh head


def test_a_complete_teacher_loads_and_a_backbone_may_lack_only_its_head(tmp_path, bert, texts):
    model, _ = load_classifier(bert)  # complete: nothing new
    assert model.config.model_type == "bert"
    mlm = build_small_bert(texts, tmp_path / "mlm", TINY, head="masked-lm")  # no pooler, no classifier
    model, _ = load_classifier(mlm, num_labels=3)  # the fine-tuning start: a fresh head (and pooler) is fine
    assert model.config.num_labels == 3
    with pytest.raises(TeacherError, match=r"classifier\.weight.*lacks the head .* fine-tune it first"):
        load_classifier(mlm)  # but as a teacher it would teach from a random head
    model, _ = load_classifier(bert, num_labels=3)  # a head of another size is replaced when fine-tuning
    assert model.classifier.out_features == 3


def test_cli_teacher_logits_with_a_gpt2_config_is_one_error_line(tmp_path, bert, capsys, monkeypatch):
    _copy(bert, tmp_path / "T", _as_gpt2)
    monkeypatch.chdir(tmp_path)
    rc = main(["teacher", "logits", "--teacher", "T", "--task", "synthetic", "--cache-dir", "cache", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: T: ") and "\n" not in err
    assert "gpt2 model" in err and "newly initialised" in err
    assert not (tmp_path / "cache" / "softtargets").exists() or not list((tmp_path / "cache").rglob("*.parquet"))


def test_other_loaders_refuse_incomplete_weights(tmp_path, bert, texts):
    from featherweight_core.teacher.augment import FillMask
    from featherweight_core.teacher.bertvision_model import truncated_backbone

    with pytest.raises(TeacherError, match=r"masked LM|cls\.predictions"):
        FillMask(bert, k=3)  # a classifier has no masked-LM head: its predictions would be noise
    mlm = build_small_bert(texts, tmp_path / "mlm", TINY, head="masked-lm")
    assert FillMask(mlm, k=3).model is not None
    assert truncated_backbone(bert, 1) is not None
    d = _copy(bert, tmp_path / "t", _drop_tensors)
    with pytest.raises(TeacherError, match=r"6 tensor\(s\)"):
        truncated_backbone(d, 2)


def _int8_dir(tmp_path, bert, write_weights):
    d = _copy(bert, tmp_path / "c")
    (d / "model.safetensors").unlink()
    meta = {"method": "theseus", "quantized": True, "max_length": 32}
    (d / COMPRESSED_META).write_text(json.dumps(meta))
    write_weights(d / INT8_WEIGHTS)
    return d


def test_compressed_int8_weights_load_only_tensors(tmp_path, bert):
    from featherweight_core.teacher.compressed import load_compressed

    marker = tmp_path / "PWNED"
    d = _int8_dir(tmp_path, bert, lambda p: torch.save({"x": _Payload(str(marker))}, p))
    with pytest.raises(CompressedTeacherError, match=r"model_int8\.pt: refused: its pickle names \w+\.open"):
        load_compressed(d)
    assert not marker.exists()
    shutil.rmtree(d)
    d = _int8_dir(tmp_path, bert, lambda p: torch.save({"x": torch.zeros(2)}, p))
    with pytest.raises(CompressedTeacherError, match=r"model_int8\.pt: not the int8 model .* tensor\(s\)"):
        load_compressed(d)


@pytest.mark.skipif(not hasattr(os, "umask"), reason="POSIX modes")
def test_model_directories_follow_the_umask(tmp_path, texts):
    """Weights used to be written 0600 (safetensors) while every other output followed the umask."""
    from featherweight_core.atomic import atomic_dir

    old = os.umask(0o022)
    try:
        d = build_small_bert(texts, tmp_path / "t", TINY)
        with atomic_dir(tmp_path / "w") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))
            (tmp / "sub").mkdir(mode=0o700)
            (tmp / "sub" / "x.bin").write_bytes(b"x")
            os.chmod(tmp / "sub" / "x.bin", 0o600)
    finally:
        os.umask(old)
    for p in [*d.rglob("*"), *(tmp_path / "w").rglob("*")]:
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p
    assert (d.stat().st_mode & 0o777, (tmp_path / "w").stat().st_mode & 0o777) == (0o755, 0o755)


def test_int8_weights_pass_the_pickle_check(tmp_path):
    """Quantized tensors have no meta-device form: the check reads them instead, still through weights_only."""
    from featherweight_core.teacher.teacher_compression import quantize_int8

    model = quantize_int8(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    torch.save(model.state_dict(), tmp_path / INT8_WEIGHTS)
    (tmp_path / "config.json").write_text("{}")
    check_model_files(tmp_path, TeacherError)
