"""Load any teacher-compression output (a Theseus successor or a BERT-Vision model, float or int8) by what its
``featherweight_compressed.json`` says. Kept apart from :mod:`featherweight_core.teacher.teacher_compression`, which the
methods build on: this front knows the methods, the shared module does not.
"""

from __future__ import annotations

from pathlib import Path

from featherweight_core.teacher.bertvision_model import load_bertvision_model
from featherweight_core.teacher.loading import load_classifier, load_tokenizer
from featherweight_core.teacher.teacher_compression import (
    INT8_WEIGHTS,
    CompressedTeacherError,
    load_int8_state,
    quantize_int8,
    read_meta,
)


def load_compressed(directory: str | Path):
    """``(model, tokenizer, meta)`` of a Theseus or BERT-Vision output, float or int8, in eval mode on the CPU. The
    model's forward returns an object with ``.logits``; ``model.config.num_labels`` is the task's label count."""
    d = Path(directory)
    meta = read_meta(d)
    quantized = bool(meta.get("quantized"))
    if meta["method"] == "bertvision":
        return load_bertvision_model(d, quantized)
    if not quantized:
        model, tokenizer = load_classifier(d)
        return model.eval(), tokenizer, meta
    from transformers import AutoConfig, AutoModelForSequenceClassification

    weights = d / INT8_WEIGHTS
    if not weights.is_file():
        raise CompressedTeacherError(f"{d}: quantized output without {INT8_WEIGHTS}")
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(d, local_files_only=True))
    model = quantize_int8(model)
    load_int8_state(model, weights)
    return model.eval(), load_tokenizer(str(d)), meta
