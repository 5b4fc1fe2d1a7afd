"""Errors the core raises on purpose for bad input are UserErrors (the command line prints them as one line and
exits 2); internal invariants stay plain exceptions, so a bug shows its traceback."""

from __future__ import annotations

import numpy as np
import pytest

from featherweight_core.errors import ConfigError, InputFileError, UserError


def _error_classes():
    from featherweight_core.compression.prune_config import PruningError
    from featherweight_core.compression.quantize import QuantizationError
    from featherweight_core.data.encoders import EncoderError
    from featherweight_core.data.taskdata import DataError
    from featherweight_core.data.wordvectors import VectorsError
    from featherweight_core.pipeline.checkpoint import CheckpointError
    from featherweight_core.students.distill import TrainingError
    from featherweight_core.students.measure import WeightsFileError
    from featherweight_core.teacher.augment import DataError as AugmentDataError
    from featherweight_core.teacher.config import TeacherError

    assert AugmentDataError is DataError
    return [
        (DataError, ValueError),
        (EncoderError, ValueError),
        (TeacherError, ValueError),
        (PruningError, ValueError),
        (QuantizationError, ValueError),
        (VectorsError, ValueError),
        (TrainingError, RuntimeError),
        (CheckpointError, ValueError),
        (WeightsFileError, ValueError),
        (ConfigError, ValueError),
        (InputFileError, FileNotFoundError),
    ]


def test_every_core_error_class_is_a_user_error_and_keeps_its_builtin_base():
    for cls, builtin in _error_classes():
        assert issubclass(cls, UserError) and issubclass(cls, builtin), cls


def test_user_error_types_helper_is_gone():
    import featherweight_core.errors as errors

    assert not hasattr(errors, "user_error_types")


@pytest.mark.parametrize(
    ("where", "args", "kwargs"),
    [
        ("students.models.StudentConfig", ("gru", "bpe", 25, 2), {}),
        ("students.models.StudentConfig", ("ffn", "bpe", 25, 2), {"pooling": "mean"}),
        ("students.distill.DistillConfig", (), {"optimizer": "lion"}),
        ("students.distill.DistillConfig", (), {"alpha": 2.0}),
        ("students.distill.resolve_temperature", ("warm", "ffn"), {}),
        ("data.tasks.get_task", ("sst3",), {}),
        ("data.tasks.custom_task", ("sst2", ["text"], ["a", "b"]), {}),
        ("compression.quantize.QuantConfig", (), {"importance_bits": 9}),
        ("teacher.augment.AugmentConfig", (), {"mode": "paraphrase"}),
        ("data.encoders.build_encoder", ("word2vec",), {}),
        ("compression.prune_config.PruneConfig", (), {"targets": {"gru": 0.5}}),
    ],
)
def test_bad_settings_raise_user_errors(where, args, kwargs):
    import importlib

    module, name = where.rsplit(".", 1)
    make = getattr(importlib.import_module(f"featherweight_core.{module}"), name)
    with pytest.raises(UserError) as e:
        make(*args, **kwargs)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_missing_and_foreign_checkpoints_are_user_errors(tmp_path):
    from featherweight_core.pipeline.checkpoint import CheckpointError, load_checkpoint, load_compressed

    with pytest.raises(InputFileError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(InputFileError, match="compressed student not found"):
        load_compressed(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    for load in (load_checkpoint, load_compressed):
        with pytest.raises(CheckpointError, match="not a featherweight student checkpoint .truncated"):
            load(junk)


def test_internal_invariants_are_not_user_errors():
    from featherweight_core.data.batching import EncodedSplit
    from featherweight_core.data.encoders import Ragged

    with pytest.raises(ValueError) as e:
        EncodedSplit((Ragged.from_sequences([np.array([1], np.int32)]),), np.zeros(2, np.int64), ["a", "b"])
    assert not isinstance(e.value, UserError)
