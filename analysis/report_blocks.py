"""The report's building blocks and cell formatting: the blocks a report is a list of (headings, paragraphs,
tables, charts), rendered as Markdown and as HTML, and how a number is written in a table cell (scores in percent,
sizes in MB, parameter counts, ratios).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class Bold(str):
    """A table cell to be shown in bold (the best mean of a row, as in the thesis tables)."""


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str | None = None


@dataclass
class Chart:
    name: str  # file stem, e.g. pareto_sst2
    spec: dict
    alt_text: str


# ------------------------------------------------------------------------------------------------------- formatting


def missing(x: Any) -> bool:
    """None, NaN, NaT or pandas.NA."""
    if x is None:
        return True
    import pandas as pd

    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):  # list-like values are not "missing"
        return False


def pct(x: Any, digits: int = 1) -> str:
    """0.8766 -> '87.7' (percent); missing -> '-'.

    >>> pct(0.8766), pct(None)
    ('87.7', '-')
    """
    return "-" if missing(x) else f"{100 * float(x):.{digits}f}"


def mb(x: Any) -> str:
    """Bytes -> megabytes with 3 significant decimals, like table 7.5 ('1.587')."""
    if missing(x):
        return "-"
    v = float(x) / 1e6
    return f"{v:,.0f}" if v >= 100 else f"{v:.3f}"


def sci(x: Any) -> str:
    """Parameter count in the thesis' style: 860000 -> '8.6e+5'."""
    if missing(x):
        return "-"
    return f"{float(x):.1e}".replace("e+0", "e+").replace("e-0", "e-")


def times(x: Any) -> str:
    """A 'times smaller' ratio: 1965.2 -> '1,965x'."""
    if missing(x):
        return "-"
    v = float(x)
    return f"{v:,.0f}x" if v >= 10 else f"{v:.1f}x"


def plain_value(x: Any) -> str:
    if missing(x):
        return "-"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def score_cell(row: pd.Series | dict, task_kind: str, suffix: str = "", digits: int = 1) -> str:
    """The thesis' score display: accuracy, accuracy/F1 (QQP-like), matched/mismatched (MNLI-like)."""
    if task_kind == "pair_f1":
        return f"{pct(row.get('accuracy' + suffix), digits)}/{pct(row.get('f1' + suffix), digits)}"
    if task_kind == "matched":
        return f"{pct(row.get('accuracy_matched' + suffix), digits)}/{pct(row.get('accuracy_mismatched' + suffix), digits)}"
    return pct(row.get("score" + suffix), digits)


def trials_task_kind(trials: pd.DataFrame) -> str:
    if trials["accuracy_matched"].notna().any():
        return "matched"
    if trials["f1"].notna().any():
        return "pair_f1"
    return "score"


SCORE_HEADERS = {"score": "score", "pair_f1": "acc/F1", "matched": "m/mm acc"}


def score_header(task_kind: str, score_name: str = "score") -> str:
    """The score column's name: the task's metric (``macro-F1``) for a single-figure score, else the thesis' pair.

    >>> score_header("score", "macro-F1"), score_header("pair_f1", "accuracy")
    ('macro-F1', 'acc/F1')
    """
    return score_name if task_kind == "score" else SCORE_HEADERS[task_kind]


def slug(text: str) -> str:
    """A file stem or element id made of ``text``: runs of other characters than letters, digits, ``_.-`` -> ``_``.

    >>> slug("sst2 (dev)")
    'sst2_dev'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "task"
