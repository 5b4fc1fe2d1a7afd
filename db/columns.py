"""The columns the writes fill, table by table, and the statuses a trial and a sweep can have (the schema itself is
in ``db/migrations``)."""

from __future__ import annotations

# 'stopped': a scheduler stopped the trial at a rung (migration 009); its score is the one it had there
TRIAL_STATUSES = ("finished", "error", "stopped")
# 'running' while the runner works; then 'finished', 'failed' (trials failed: the message says how many) or
# 'interrupted' (stopped before the end: Ctrl-C, a crash of the driver)
SWEEP_STATUSES = ("running", "finished", "failed", "interrupted")
FINAL_SWEEP_STATUSES = SWEEP_STATUSES[1:]

# Columns of ``results`` filled from TrialRecord.metrics / .sizes (everything is also kept in the JSON columns).
METRIC_COLUMNS = (
    "score",
    "accuracy",
    "f1",
    "accuracy_matched",
    "accuracy_mismatched",
    "best_epoch",
    "epochs",
    "macro_f1",
    "test_score",
    "test_accuracy",
    "test_f1",
    "test_macro_f1",
)
SIZE_COLUMNS = (
    "params",
    "params_embedding",
    "params_encoder",
    "params_classifier",
    "nonzero_params",
    "disk_bytes",
    "gzip_bytes",
    "ideal_bytes",
)
# stored as integers (a float such as 3.0 from a JSON report is rounded)
INT_COLUMNS = {"best_epoch", "epochs", "trainable_params", "layers", *SIZE_COLUMNS}

# Where a trial ran (migration 004), besides ``device`` and ``node``; see trainables.placement
PLACEMENT_COLUMNS = ("node_id", "host", "node_ip", "gpu_model", "torch_version", "cuda_version")
TRIAL_COLUMNS = (
    "sweep",
    "trial_id",
    "stage",
    "parent_trial_id",
    "task",
    "arch",
    "embedding",
    "emb_dim",
    "vocab_size",
    "alpha",
    "temperature",
    "bootstrap",
    "seed",
    "pooling",
    "pruning",
    "quantization",
    "status",
    "error",
    "config",
    "started_at",
    "finished_at",
    "seconds",
    "checkpoint_path",
    "recorded_at",
    "device",
    "node",
    *PLACEMENT_COLUMNS,
    "teacher",
    "stopped_at_rung",
    "stop_reason",
)
# Columns of ``results`` added by migrations 006 and 007 (teacher compression): TrialRecord fields of the same name,
# falling back to the same key of ``sizes`` (trainable_params, layers) or ``metrics`` (latency_ms, teacher_latency_ms)
EXTRA_RESULT_COLUMNS = ("trainable_params", "latency_ms", "layers", "teacher_latency_ms")
RESULT_COLUMNS = ("sweep", "trial_id", *METRIC_COLUMNS, *SIZE_COLUMNS, "metrics", "sizes", *EXTRA_RESULT_COLUMNS)
EPOCH_COLUMNS = ("sweep", "trial_id", "epoch", "train_loss", "score", "seconds", "samples_per_second", "metrics")
# The latency table (migration 008): one row per trial, model (trial | teacher) and runtime (torch | onnxruntime)
LATENCY_COLUMNS = (
    "sweep",
    "trial_id",
    "model",
    "runtime",
    "precision",
    "p50_ms",
    "p90_ms",
    "throughput",
    "batch_size",
    "threads",
    "examples",
    "machine",
)
LATENCY_MODELS = ("trial", "teacher")
CLASS_COLUMNS = ("sweep", "trial_id", "split", "label_id", "label", "precision", "recall", "f1", "support", "predicted")
