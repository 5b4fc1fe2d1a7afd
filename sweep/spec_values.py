"""The checks every section of a sweep spec uses: one :class:`SpecError` line naming the key path and the value."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from featherweight_core.errors import UserError


class SpecError(UserError, ValueError):
    """An invalid sweep spec; the message names the key and the value."""


def check_keys(section: dict, allowed: dict, where: str) -> None:
    if not isinstance(section, dict):
        raise SpecError(f"{where or 'spec'}: expected a mapping, got {type(section).__name__} {section!r}")
    for k in section:
        if k not in allowed:
            raise SpecError(f"{where + '.' if where else ''}{k}: unknown key; expected one of {sorted(allowed)}")


def merge_defaults(defaults: dict, given: dict | None, where: str) -> dict:
    given = {} if given is None else given
    check_keys(given, defaults, where)
    out = copy.deepcopy(defaults)
    out.update(copy.deepcopy(given))
    return out


def check_list(value: Any, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}: expected a non-empty list, got {value!r}")
    return value


def check_int(value: Any, where: str, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise SpecError(f"{where}: {value} must be >= {lo}")
    return value


def check_number(
    value: Any, where: str, lo: float | None = None, hi: float | None = None, hi_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{where}: expected a finite number, got {value!r}")
    if hi is None and lo is not None and value < lo:
        raise SpecError(f"{where}: {value} must be >= {lo}")
    if (lo is not None and value < lo) or (hi is not None and (value >= hi if hi_open else value > hi)):
        raise SpecError(f"{where}: {value} is outside [{lo}, {hi}{')' if hi_open else ']'}")
    return float(value)


def check_choice(value: Any, choices: tuple, where: str) -> Any:
    if value not in choices:
        raise SpecError(f"{where}: {value!r} is not one of {list(choices)}")
    return value


def short_repr(value: Any) -> str:
    """A value for an error line: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def check_gpus(value: Any, where: str) -> None:
    """``auto`` or a number of GPUs >= 0 (a whole number above one)."""
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SpecError(f"{where}: expected 'auto' or a number of GPUs >= 0, got {value!r}")
    if value > 1 and not float(value).is_integer():
        raise SpecError(f"{where}: {value} GPUs: more than one GPU must be a whole number")


@dataclass(frozen=True)
class Section:
    """A trial stage's section of the spec (``sweep.stages.base.Stage.section`` names it): its top-level ``key``
    (left out or null: the stage is off), ``validate(value, tasks) -> the section with its defaults`` (raises
    :class:`SpecError`), and the per-trial ``resources`` keys it adds to the spec's ``resources:`` section (key ->
    default) with ``check_resources(resources)`` validating them. A module under ``sweep/sections/`` that defines
    ``SECTION`` is picked up by the spec (``sweep.sections.SECTIONS``)."""

    key: str
    validate: Callable[[Any, dict[str, dict]], dict]
    resources: dict[str, Any] = field(default_factory=dict)
    check_resources: Callable[[dict], None] | None = None
