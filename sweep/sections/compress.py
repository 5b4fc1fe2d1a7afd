"""The ``compress:`` section of a sweep spec: which distilled students are the compression stage's parents, the size
its Optuna search minimises, the search itself (samples, pruning method and scope, per-module-group sparsity bounds)
and the quantization every sample ends with."""

from __future__ import annotations

from typing import Any

from featherweight_core.vocab import (
    IMPORTANCE_BITS,
    MODULE_GROUPS,
    PRUNE_METHODS,
    PRUNE_SCOPES,
    QUANT_PARTS,
    SIZE_MEASURES,
)
from sweep.spec_values import (
    Section,
    SpecError,
    check_choice,
    check_int,
    check_keys,
    check_list,
    check_number,
    merge_defaults,
)

SEARCH_KEYS = {
    "num_samples": 8,
    "max_concurrent": 2,
    "seed": 0,
    "method": "magnitude",
    "scope": "local",
    "targets": {"embedding": [0.0, 0.6], "encoder": [0.0, 0.9], "classifier": [0.0, 0.6]},
    "finetune_epochs": 0,
}
QUANT_KEYS = {**{part: part != "static_classifier" for part in QUANT_PARTS}, "importance_bits": 16}
COMPRESS_KEYS = {"parents": "skyline", "size_measure": "gzip_bytes", "search": {}, "quantize": {}}


def validate_compress(value: Any, tasks: dict[str, dict]) -> dict:
    """``compress: {parents, size_measure, search, quantize}`` with its defaults filled in (``tasks``: the spec's
    tasks, which this section does not need)."""
    c = merge_defaults(COMPRESS_KEYS, value, "compress")
    p = c["parents"]
    if isinstance(p, dict):
        check_keys(p, {"top_k": None, "trials": None}, "compress.parents")
        if len(p) != 1:
            raise SpecError(f"compress.parents: give exactly one of top_k or trials, got {p!r}")
        if "top_k" in p:
            check_int(p["top_k"], "compress.parents.top_k", 1)
        else:
            for i, tid in enumerate(check_list(p["trials"], "compress.parents.trials")):
                if not isinstance(tid, str):
                    raise SpecError(f"compress.parents.trials[{i}]: expected a trial id string, got {tid!r}")
    elif p != "skyline":
        raise SpecError(f"compress.parents: expected 'skyline', {{top_k: N}} or {{trials: [...]}}, got {p!r}")
    check_choice(c["size_measure"], SIZE_MEASURES, "compress.size_measure")
    s = c["search"] = merge_defaults(SEARCH_KEYS, c["search"], "compress.search")
    check_int(s["num_samples"], "compress.search.num_samples", 1)
    check_int(s["max_concurrent"], "compress.search.max_concurrent", 1)
    check_int(s["seed"], "compress.search.seed", 0)
    check_int(s["finetune_epochs"], "compress.search.finetune_epochs", 0)
    check_choice(s["method"], PRUNE_METHODS, "compress.search.method")
    check_choice(s["scope"], PRUNE_SCOPES, "compress.search.scope")
    check_keys(s["targets"], dict.fromkeys(MODULE_GROUPS), "compress.search.targets")
    for group, rng in s["targets"].items():
        w = f"compress.search.targets.{group}"
        if not isinstance(rng, list) or len(rng) != 2:
            raise SpecError(f"{w}: expected [low, high] sparsity bounds, got {rng!r}")
        lo, hi = (check_number(x, w, 0.0, 1.0, hi_open=True) for x in rng)
        if lo > hi:
            raise SpecError(f"{w}: low {lo} > high {hi}")
    q = c["quantize"] = merge_defaults(QUANT_KEYS, c["quantize"], "compress.quantize")
    for k, v in q.items():
        if k == "importance_bits":
            if isinstance(v, bool) or v not in IMPORTANCE_BITS:
                raise SpecError(f"compress.quantize.importance_bits: expected an integer in 2..8 or 16, got {v!r}")
        elif not isinstance(v, bool):
            raise SpecError(f"compress.quantize.{k}: expected true or false, got {v!r}")
    return c


SECTION = Section("compress", validate_compress)
