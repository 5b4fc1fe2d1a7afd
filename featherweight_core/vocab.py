"""The one vocabulary of choices: every name a user can pick, read by the core, the sweep spec validator and every
command line. Add a choice here (and implement it) and every entry point accepts it.

Module groups have one spelling for users: ``embedding``, ``encoder``, ``classifier`` (the thesis' parts of a
student, as in :func:`featherweight_core.students.measure.param_counts`). Pruning also knows finer groups (thesis table 6.3:
``lstm``, ``rnn``, ``linear``, ``hash_emb``, ``char_emb``, ``bpe_emb``, see :mod:`featherweight_core.compression.prune`), but
takes the module groups as they are: ``PruneConfig(targets={"embedding": 0.4, "encoder": 0.5})``.
"""

from __future__ import annotations

ARCHS = ("bilstm", "rnn", "ffn")
EMBEDDINGS = ("bpe", "char", "hash")
POOLINGS = ("last", "max")
OPTIMIZERS = ("adadelta", "adam", "adamw", "sgd")

PRUNE_METHODS = ("magnitude", "topv", "movement")
PRUNE_SCOPES = ("local", "global")
PRUNE_SCHEDULES = ("post", "gradual")

MODULE_GROUPS = ("embedding", "encoder", "classifier")
# module group -> the name featherweight_core.compression.prune takes for it: the same word (kept for code that maps through it)
PRUNE_GROUP_OF_MODULE_GROUP = {g: g for g in MODULE_GROUPS}

# How a model's size is measured (columns of the results table; x axes of the Pareto charts)
SIZE_MEASURES = ("gzip_bytes", "disk_bytes", "params")
# Runtimes a model's CPU latency is measured in (sweeps' measure.runtimes, the latency table's runtime column)
LATENCY_RUNTIMES = ("torch", "onnxruntime")
# What a report's skyline and charts can put on the size axis: a size, or batch-1 latency (milliseconds, median) in
# one runtime (the report command's --size latency_ms --runtime R is the chart measure latency_ms_R)
REPORT_SIZE_MEASURES = (*SIZE_MEASURES, "latency_ms")
LATENCY_SIZE_MEASURES = tuple(f"latency_ms_{r}" for r in LATENCY_RUNTIMES)
CHART_SIZE_MEASURES = (*SIZE_MEASURES, *LATENCY_SIZE_MEASURES)
# Parts a quantization config switches on or off
QUANT_PARTS = ("embedding", "encoder", "classifier", "static_classifier")
IMPORTANCE_BITS = (2, 3, 4, 5, 6, 7, 8, 16)

# Headline metrics of a task: f1 is the F1 of the positive class (the second label) and needs a binary task
TASK_METRICS = ("accuracy", "f1", "macro_f1")
# What reading a custom task's files does with bytes that are not valid in the task's encoding
BAD_BYTES_POLICIES = ("replace", "error")
TEACHER_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUGMENT_MODES = ("embedding", "fill-mask")
# how a file of teacher outputs holds its values (featherweight_core.teacher.outputs); auto: detected from the columns
TEACHER_OUTPUT_LAYOUTS = ("auto", "label", "columns", "probs", "logits")
AUGMENT_FIELDS = ("auto", "first", "second", "all")

# Teacher compression (a smaller transformer from the fine-tuned teacher; seeds BERT-of-Theseus and BERT-Vision)
TEACHER_COMPRESSION_METHODS = ("theseus", "bertvision")
# How the probability that a Theseus block runs its successor grows: constant (then 1.0 for the last steps) or
# linear (p = min(k * step + b, 1))
THESEUS_SCHEDULES = ("constant", "linear")
# BERT-Vision heads over the per-layer hidden states: adapter (a shared per-layer adapter, flattened, then a linear
# classifier) or concat (a learned weighted sum of the layers, then a linear classifier)
BERTVISION_HEADS = ("adapter", "concat")
# Which positions of each layer a BERT-Vision head reads: the first token ([CLS]) or the mean over the real tokens
BERTVISION_POOLINGS = ("first", "mean")

# BPE vocabulary size / hash embedding K when none is given (the thesis' main setting); char embeddings have none
DEFAULT_VOCAB_SIZE = 5000
# Vocabulary sizes and dimensions BPEmb publishes; anything else cannot exist locally or online
BPEMB_VOCAB_SIZES = (1000, 3000, 5000, 10000, 25000, 50000, 100000, 200000)
BPEMB_DIMS = (25, 50, 100, 200, 300)

# Archs with a recurrent encoder (prunable and quantizable encoder weights); the FFN has none
RECURRENT_ARCHS = ("bilstm", "rnn")
