"""The trial contract: pinned ids, ids stable as the contract grows, strict outcome decoding."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from sweep.stages.registry import trial_from_dict
from trainables.compress import CompressTrial
from trainables.trial import (
    OUTCOME_KEY,
    DistillTrial,
    OutcomeError,
    TeacherCompressionTrial,
    TrialOutcome,
    canonical_id,
)

PARENT = DistillTrial(
    task="synthetic",
    arch="bilstm",
    embedding="hash",
    emb_dim=25,
    vocab_size=1000,
    alpha=0.5,
    bootstrap=False,
    seed=0,
    max_epochs=5,
    patience=2,
    lr=0.003,
    optimizer="adam",
)
QUANT = {"embedding": True, "encoder": True, "classifier": True, "static_classifier": False}


THESEUS = TeacherCompressionTrial(
    task="sst2",
    method="theseus",
    seed=0,
    quantize=False,
    settings={"schedule": "linear", "replace_rate": 2, "epochs": 1},
    teacher_fingerprint="0123456789abcdef",
)


def _compress(**kw) -> CompressTrial:
    args = {
        "parent_trial_id": PARENT.trial_id,
        "parent_checkpoint": "/runs/x/student.pt",
        "parent_config": PARENT.to_dict(),
        "targets": {"embedding": 0.25, "encoder": 0.5, "classifier": 0.1},
        "quantize": QUANT,
    }
    return CompressTrial(**{**args, **kw})


def test_pinned_ids():
    # Computed by the first release's hashing; sweeps recorded with it must keep resuming
    assert PARENT.trial_id == "d-459064c0be83"
    assert dataclasses.replace(PARENT, embedding="char", vocab_size=None, alpha=1.0, arch="ffn").trial_id == (
        "d-43d5659f0456"
    )
    assert _compress().trial_id == "c-a780ffc12d31"
    assert _compress(quantize={**QUANT, "importance_bits": 6}).trial_id == "c-0ee72620ef7e"
    assert _compress(quantize={**QUANT, "importance_bits": 16}).trial_id == "c-a780ffc12d31"  # default: not counted


def test_teacher_compression_ids():
    assert THESEUS.trial_id == "t-783fbd571b8a"
    # the settings are canonical: the order they come in does not matter
    same = dataclasses.replace(THESEUS, settings={"epochs": 1, "replace_rate": 2, "schedule": "linear"})
    assert same.trial_id == THESEUS.trial_id and list(same.settings) == ["epochs", "replace_rate", "schedule"]
    # a changed knob, seed, quantization or teacher is a new trial
    for changed in (
        dataclasses.replace(THESEUS, settings={**THESEUS.settings, "replace_rate": 3}),
        dataclasses.replace(THESEUS, seed=1),
        dataclasses.replace(THESEUS, quantize=True),
        dataclasses.replace(THESEUS, teacher_fingerprint="fedcba9876543210"),
        dataclasses.replace(THESEUS, method="bertvision"),
    ):
        assert changed.trial_id != THESEUS.trial_id and changed.trial_id.startswith("t-")
    assert dataclasses.replace(THESEUS, task_definition=None).trial_id == THESEUS.trial_id
    assert THESEUS.arch == "theseus" and THESEUS.stage == "teacher_compression"
    assert THESEUS.describe() == "sst2 theseus epochs=1 replace_rate=2 schedule=linear seed=0"


def test_teacher_compression_round_trip_and_strictness():
    d = THESEUS.to_dict()
    assert d["stage"] == "teacher_compression"
    assert TeacherCompressionTrial.from_dict(d) == THESEUS
    assert trial_from_dict({**d, "trial_id": THESEUS.trial_id, "resolved": {}}) == THESEUS
    with pytest.raises(OutcomeError, match="unknown field"):
        TeacherCompressionTrial.from_dict({**d, "colour": "blue"})
    with pytest.raises(OutcomeError, match="missing field"):
        TeacherCompressionTrial.from_dict({k: v for k, v in d.items() if k != "teacher_fingerprint"})
    with pytest.raises(OutcomeError, match="method='distil'"):
        dataclasses.replace(THESEUS, method="distil")
    with pytest.raises(OutcomeError, match="without seed"):
        dataclasses.replace(THESEUS, settings={"seed": 1})


def test_outcome_teacher_compression_fields_decode_old_outcomes():
    old = {"status": "finished", "started_at": 1.0, "finished_at": 2.0, "metrics": {"score": 0.5}}
    back = TrialOutcome.from_result({OUTCOME_KEY: json.dumps(old)})
    assert back.trainable_params is None and back.latency_ms is None and back.layers is None and back.teacher == {}
    new = TrialOutcome(
        status="finished",
        started_at=1.0,
        finished_at=2.0,
        metrics={"score": 0.5},
        trainable_params=10,
        latency_ms=1.5,
        layers=2,
        teacher={"dir": "t", "layers": 4},
    )
    assert TrialOutcome.from_result(new.to_result()) == new


def test_a_new_field_at_its_default_keeps_ids():
    values = {k: v for k, v in PARENT.to_dict().items() if k in DistillTrial.V1_FIELDS}
    base = canonical_id("d", values, DistillTrial.V1_FIELDS, {})
    assert base == PARENT.trial_id
    grown = {**values, "label_smoothing": 0.0}
    assert canonical_id("d", grown, DistillTrial.V1_FIELDS, {"label_smoothing": 0.0}) == base
    assert (
        canonical_id("d", {**grown, "label_smoothing": 0.1}, DistillTrial.V1_FIELDS, {"label_smoothing": 0.0}) != base
    )


def test_ids_normalise_values():
    # task_definition was added after version 1 with default None: built-in tasks keep their ids
    assert dataclasses.replace(PARENT, task_definition=None).trial_id == "d-459064c0be83"
    assert dataclasses.replace(PARENT, task_definition="abc").trial_id != "d-459064c0be83"
    assert dataclasses.replace(PARENT, alpha=1).trial_id == dataclasses.replace(PARENT, alpha=1.0).trial_id
    char = dataclasses.replace(PARENT, embedding="char", vocab_size=5000)
    assert char.vocab_size is None  # char embeddings have no vocabulary: grid duplicates collapse
    # Optuna's long floats are rounded, so the same proposal always has the same id
    assert _compress(targets={"embedding": 0.25000000001, "encoder": 0.5, "classifier": 0.1}).trial_id == (
        _compress().trial_id
    )


def test_round_trips_and_strictness():
    assert DistillTrial.from_dict(PARENT.to_dict()) == PARENT
    c = _compress()
    assert CompressTrial.from_dict(c.to_dict()) == c
    assert trial_from_dict({**PARENT.to_dict(), "trial_id": "x", "resolved": {}}) == PARENT
    assert trial_from_dict(c.to_dict()) == c
    with pytest.raises(OutcomeError, match="unknown field"):
        DistillTrial.from_dict({**PARENT.to_dict(), "colour": "blue"})
    with pytest.raises(OutcomeError, match="missing field"):
        DistillTrial.from_dict({k: v for k, v in PARENT.to_dict().items() if k != "seed"})
    with pytest.raises(OutcomeError, match="targets"):
        _compress(targets={"emb": 0.1})


def test_outcome_round_trip():
    o = TrialOutcome(
        status="finished",
        started_at=10.0,
        finished_at=12.5,
        device="cpu",
        node="10.0.0.1/abcd",
        metrics={"score": 0.9, "accuracy": 0.9},
        sizes={"params": 100, "nonzero_params": 80, "gzip_bytes": 300},
        history=[{"epoch": 1, "score": 0.8}],
    )
    result = o.to_result("params")
    assert result["score"] == 0.9 and result["size"] == 80.0  # params: what pruning leaves
    assert isinstance(result[OUTCOME_KEY], str)  # one JSON string: Tune flattens nested dicts
    back = TrialOutcome.from_result(result)
    assert back == o and back.seconds == 2.5
    failed = TrialOutcome.failed("RuntimeError: boom", 1.0, 2.0)
    r = failed.to_result("gzip_bytes")
    assert math.isnan(r["score"]) and math.isnan(r["size"])
    assert TrialOutcome.from_result(r).error == "RuntimeError: boom"


@pytest.mark.parametrize(
    ("result", "match"),
    [
        ({}, "has no 'fw_outcome'"),
        (None, "has no 'fw_outcome'"),
        ({OUTCOME_KEY: "{not json"}, "not valid JSON"),
        ({OUTCOME_KEY: "[1, 2]"}, "not an object"),
        ({OUTCOME_KEY: json.dumps({"status": "finished", "started_at": 1, "finished_at": 2})}, "numeric"),
        ({OUTCOME_KEY: json.dumps({"status": "done", "started_at": 1, "finished_at": 2})}, "status 'done'"),
        ({OUTCOME_KEY: json.dumps({"status": "error", "started_at": 1, "finished_at": 2})}, "error message"),
        (
            {OUTCOME_KEY: json.dumps({"status": "error", "error": "x", "started_at": 1, "finished_at": 2, "z": 1})},
            "unknown field",
        ),
    ],
)
def test_outcome_decoding_is_strict(result, match):
    with pytest.raises(OutcomeError, match=match):
        TrialOutcome.from_result(result)
