"""The trial stages' sections of a sweep spec, one module each (``compress``, ``teacher_compression``), each defining
``SECTION`` (a :class:`sweep.spec_values.Section`: its top-level key, validator and resource keys).

``SECTIONS`` (key -> section) is every module of this package that defines one, in module-name order: a new stage's
section is a new module here and nothing else (``sweep.spec`` builds its top-level and resource keys from it). The
modules are found on disk rather than listed because ``sweep.spec`` sits below the stages that name their sections
(``sweep.stages``) and cannot import their registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from sweep.spec_values import Section


def _discover() -> dict[str, Section]:
    found: dict[str, Section] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        section = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SECTION", None)
        if not isinstance(section, Section):
            continue
        if section.key in found:
            raise RuntimeError(f"two spec sections use the key {section.key!r} ({__name__}.{info.name})")
        found[section.key] = section
    return found


SECTIONS: dict[str, Section] = _discover()
