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
    teacher_latency_ms: float | None = 13.0,
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
        teacher_latency_ms=teacher_latency_ms,
        layers=layers,
        checkpoint_path=f"/runs/s/teacher_compression/{trial_id}",
        history=[{"epoch": e, "train_loss": 0.5 / e, "score": score - 0.01 * (2 - e), "seconds": 30.0} for e in (1, 2)],
    )
    fields.update(overrides)
    return make_record(sweep, trial_id, **fields)


# the measured teacher of fill_whole_range: name (as record_teacher gets it for TEACHER_DIR), score, params, disk, gzip
TEACHER = ("teacher:teacher-sst2", 0.91, 22_700_000, 90_900_000, 84_000_000)


def _student(sweep, trial_id, score, gzip, params, stage="distill", **kw) -> TrialRecord:
    return make_record(
        sweep,
        trial_id,
        stage=stage,
        metrics={"score": score, "accuracy": score},
        sizes={"params": params, "nonzero_params": params, "disk_bytes": gzip + 100, "gzip_bytes": gzip},
        **kw,
    )


def fill_whole_range(store, sweep: str = "s") -> None:
    """One sst2 sweep spanning the whole size range: the measured teacher (and a later, unrelated one), Theseus and
    BERT-Vision models (one quantized, two settings of Theseus-3L, a teacher-sized one that scores best of all),
    distilled students from 1.1 KB and a quantized student. On the gzip skyline: d-tiny, c-mid, d-mid, t-th3q, t-th3,
    the teacher, t-best; dominated: t-th3-r7, t-bv6 (by the teacher), d-worse."""
    store.start_sweep(sweep, {}, "test", f"/storage/{sweep}")
    name, score, params, disk, gz = TEACHER
    store.record_teacher(sweep, "sst2", name, score, score, None, params, disk, gz)
    # recorded later, so the fallback would pick it: the trials name their own teacher directory
    store.record_teacher(sweep, "sst2", "teacher:other", 0.80, 0.80, None, 1_000, 1_000_000, None)
    for rec in (
        make_tc_record(sweep, "t-th3", "theseus", 3, score=0.88),
        make_tc_record(
            sweep,
            "t-th3-r7",
            "theseus",
            3,
            score=0.87,
            seed=2,
            settings={"replace_rate": 0.7, "schedule": "constant", "successor_layers": 3},
        ),
        make_tc_record(
            sweep,
            "t-th3q",
            "theseus",
            3,
            score=0.875,
            quantize=True,
            disk_bytes=40_000_000,
            gzip_bytes=30_000_000,
            latency_ms=4.0,
        ),
        make_tc_record(
            sweep,
            "t-bv6",
            "bertvision",
            6,
            score=0.905,
            params=22_750_000,
            trainable_params=52_000,
            disk_bytes=91_100_000,
            gzip_bytes=84_200_000,
            latency_ms=9.0,
        ),
        # the best score of the sweep: it must still never become a student parent (top_k)
        make_tc_record(
            sweep, "t-best", "theseus", 6, score=0.99, params=22_700_000, disk_bytes=95_000_000, gzip_bytes=95_000_000
        ),
        _student(sweep, "d-tiny", 0.82, 1_100, 300),
        _student(sweep, "d-mid", 0.86, 380_000, 100_000),
        _student(sweep, "d-worse", 0.80, 500_000, 120_000),
        _student(
            sweep, "c-mid", 0.85, 100_000, 100_000, stage="compress", parent_trial_id="d-mid", quantization="int8"
        ),
    ):
        assert store.record_trial(rec)
