"""Settings declared once: a config dataclass field made with :func:`setting` carries its default, type, allowed
values and help text; the sweep spec's schema, the trial configs, the command-line options and the docs tables are
derived from it (:func:`settings_of`).

Plain Python on purpose (no torch): the spec validator and ``featherweight --help`` read the declarations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

_UNSET: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Setting:
    """One user-facing setting. ``kind``: ``int``, ``float`` or ``choice``; ``minimum`` an inclusive lower bound,
    ``above`` an exclusive one; ``choices`` the values of a ``choice``; ``nullable``: ``None`` is accepted (the
    help text says what it means); ``words``: strings accepted beside numbers (``auto``). ``default`` is the value a
    user who leaves the setting out gets (``auto`` for a temperature the core resolves per arch)."""

    name: str
    default: Any
    help: str
    kind: str
    minimum: float | None = None
    above: float | None = None
    choices: tuple = ()
    nullable: bool = False
    words: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line option: ``max_epochs`` -> ``--max-epochs``."""
        return "--" + self.name.replace("_", "-")

    def error(self, value: Any) -> str | None:
        """What is wrong with ``value`` as a spec gives it (one line, without the key), or None when it is valid."""
        if (value is None and self.nullable) or (isinstance(value, str) and value in self.words):
            return None
        if self.kind == "choice":
            return None if value in self.choices else f"{value!r} is not one of {list(self.choices)}"
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {value!r}"
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"expected a finite number, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"{value} must be >= {self.minimum}"
        if self.above is not None and value <= self.above:
            return f"{value} must be > {self.above}"
        return None


def setting(
    default: Any,
    help: str,
    *,
    kind: str,
    minimum: float | None = None,
    above: float | None = None,
    choices: tuple = (),
    nullable: bool = False,
    words: tuple[str, ...] = (),
    user_default: Any = _UNSET,
) -> Any:
    """A dataclass field declaring a user-facing setting (see :class:`Setting`). ``user_default``: what the user
    gets when the setting is left out, where the dataclass holds a resolved value (a temperature: ``auto`` for
    the spec and the command line, resolved per arch before the dataclass is built)."""
    meta = Setting(
        name="",
        default=default if user_default is _UNSET else user_default,
        help=help,
        kind=kind,
        minimum=minimum,
        above=above,
        choices=tuple(choices),
        nullable=nullable or default is None,
        words=tuple(words),
    )
    return dataclasses.field(default=default, metadata={"setting": meta})


def settings_of(cls: type) -> dict[str, Setting]:
    """The settings a dataclass declares with :func:`setting`, in field order, by name."""
    return {
        f.name: dataclasses.replace(f.metadata["setting"], name=f.name)
        for f in dataclasses.fields(cls)
        if "setting" in f.metadata
    }


def shown_default(value: Any) -> str:
    """A default as the docs tables write it: ``none``, a number, or a word in backticks."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)


def markdown_rows(settings: dict[str, Setting], prefix: str) -> list[str]:
    """The rows of a docs table ``| key | default | meaning |`` for ``settings`` (keys as ``prefix.name``)."""
    return [f"| `{prefix}.{s.name}` | {shown_default(s.default)} | {s.help} |" for s in settings.values()]
