"""The top-level ``scheduler:`` key of a sweep spec: how the distillation stage spends its epochs. Left out (or
null), the whole grid trains to the end. ``scheduler: pareto_halving`` (every default) or ``scheduler: {kind:
pareto_halving, eta: 3, grace: 1, seeds: first, seeds_margin: 1.0}`` stops trials dominated at a rung
(``sweep.pareto_halving``)."""

from __future__ import annotations

from typing import Any

from sweep.pareto_halving import KIND, SETTINGS, HalvingSettings
from sweep.spec_values import SpecError, check_keys, short_repr


def validate_scheduler(value: Any) -> dict | None:
    """``None`` (no scheduler) or the scheduler's mapping with every setting filled in."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise SpecError(f"scheduler: expected {KIND!r} or a mapping {{kind: {KIND}, ...}}, got {short_repr(value)}")
    kind = value.get("kind")
    if kind != KIND:
        raise SpecError(f"scheduler.kind: {kind!r} is not a known scheduler; expected {KIND!r}")
    check_keys(value, {"kind": None, **SETTINGS}, "scheduler")
    out: dict[str, Any] = {"kind": KIND}
    for name, s in SETTINGS.items():
        v = value.get(name, s.default)
        problem = s.error(v)
        if problem:
            raise SpecError(f"scheduler.{name}: {problem}")
        out[name] = float(v) if s.kind == "float" else v
    return out


def halving_settings(scheduler: dict | None) -> HalvingSettings | None:
    """The validated ``scheduler`` mapping as settings (``None``: no scheduler)."""
    if scheduler is None:
        return None
    return HalvingSettings(**{k: v for k, v in scheduler.items() if k != "kind"})
