"""Hand-made teacher_compression trial records (the row shape the sweep writes for Theseus and BERT-Vision trials),
for the db and analysis tests. Sizes are those of a MiniLM-like teacher (6 layers, hidden 384, ~22.7M parameters)."""

from __future__ import annotations

from db.rows import TrialRecord
from tests.fakes import make_record

TEACHER_DIR = "assets/teacher-sst2"
INT8 = "int8 dynamic (Linear)"


def make_tc_record(
    sweep: str = "s",
    trial_id: str = "tc-0",
    method: str = "theseus",
    layers: int = 3,
    score: float = 0.88,
    params: int = 17_400_000,
    trainable_params: int = 5_300_000,
    disk_bytes: int = 69_700_000,
    gzip_bytes: int = 64_000_000,
    latency_ms: float = 6.5,
    quantize: bool = False,
    settings: dict | None = None,
    **overrides,
) -> TrialRecord:
    """A finished teacher_compression trial of ``method`` ('theseus' | 'bertvision') on sst2; ``overrides`` replace
    TrialRecord fields."""
    if settings is None:
        settings = (
            {"replace_rate": 0.5, "schedule": "constant", "successor_layers": layers}
            if method == "theseus"
            else {"layers": layers, "head": "adapter", "adapter_size": 8}
        )
    fields = dict(
        stage="teacher_compression",
        arch=method,
        embedding="transformer",
        emb_dim=384,
        vocab_size=30522,
        alpha=None,
        temperature=None,
        bootstrap=False,
        pooling=None,
        parent_trial_id=None,
        quantization=INT8 if quantize else None,
        config={"task": "sst2", "method": method, "seed": 0, "quantize": quantize, "settings": settings},
        metrics={"score": score, "accuracy": score, "best_epoch": 2, "epochs": 2},
        sizes={
            "params": params,
            "disk_bytes": disk_bytes,
            "gzip_bytes": gzip_bytes,
            "trainable_params": trainable_params,
        },
        teacher=TEACHER_DIR,
        trainable_params=trainable_params,
        latency_ms=latency_ms,
        layers=layers,
        checkpoint_path=f"/runs/s/teacher_compression/{trial_id}",
        history=[
            {"epoch": e, "train_loss": 0.5 / e, "score": score - 0.01 * (2 - e), "seconds": 30.0} for e in (1, 2)
        ],  # fmt: skip
    )
    fields.update(overrides)
    return make_record(sweep, trial_id, **fields)
