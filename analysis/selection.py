"""Stage-2 parent selection: which finished distillation trials a sweep compresses.

The skyline choice reads ``pareto_points.on_stage_skyline``, the same dominance rule (in SQL, written once) that the
report's skylines use, so the parents are exactly the distill trials the report shows on the distill-stage frontier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from db.errors import StoreError
from featherweight_core.vocab import SIZE_MEASURES

if TYPE_CHECKING:
    import pandas as pd

    from db.store import ExperimentStore

_DISTILL = "SELECT * FROM trial_results WHERE sweep = ? AND stage = 'distill' AND status = 'finished'"


def select_parents(store: ExperimentStore, sweep: str, parents: Any, size_measure: str) -> pd.DataFrame:
    """Finished distill-stage rows of ``trial_results`` (every column, config and checkpoint_path included):

    - ``"skyline"``: per task, the trials on the distill-stage skyline of score against ``size_measure`` (ties all
      kept), ordered by task, size;
    - ``{"top_k": k}``: per task the ``k`` best by score, ties broken by trial_id;
    - ``{"trials": [ids]}``: those trials, in the order given; an id that is not a finished distillation trial of the
      sweep -> StoreError naming it.

    ``store`` needs the analysis views (``analysis.views.open_store``)."""
    if size_measure not in SIZE_MEASURES:
        raise ValueError(f"size measure must be one of {SIZE_MEASURES}, got {size_measure!r}")
    if parents == "skyline":
        return store.query(
            f"""
            WITH distill AS ({_DISTILL}),
            frontier AS (
                SELECT sweep, trial_id, size_value FROM pareto_points
                WHERE sweep = ? AND stage = 'distill' AND kind = 'trial' AND on_stage_skyline
                  AND score_measure = 'score' AND size_measure = ?
            )
            SELECT d.* FROM distill d JOIN frontier f USING (sweep, trial_id)
            ORDER BY d.task, f.size_value, d.score DESC, d.trial_id
            """,
            [sweep, sweep, size_measure],
        )
    if isinstance(parents, Mapping) and set(parents) == {"top_k"}:
        k = parents["top_k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"top_k must be a positive integer, got {k!r}")
        return store.query(
            f"""
            WITH distill AS ({_DISTILL}),
            ranked AS (
                SELECT *, row_number() OVER (PARTITION BY task ORDER BY score DESC, trial_id) AS parent_rank
                FROM distill WHERE score IS NOT NULL
            )
            SELECT * EXCLUDE (parent_rank) FROM ranked WHERE parent_rank <= ? ORDER BY task, parent_rank
            """,
            [sweep, k],
        )
    if isinstance(parents, Mapping) and set(parents) == {"trials"}:
        ids = [str(t) for t in parents["trials"]]
        rows = store.query(_DISTILL + " AND list_contains(?, trial_id)", [sweep, ids])
        found = set(rows["trial_id"])
        missing = [t for t in ids if t not in found]
        if missing:
            raise StoreError(f"compress.parents.trials: no finished distillation trial {missing[0]!r}")
        order = {t: i for i, t in enumerate(dict.fromkeys(ids))}
        return rows.sort_values("trial_id", key=lambda s: s.map(order)).reset_index(drop=True)
    raise ValueError(f"parents must be 'skyline', {{'top_k': k}} or {{'trials': [ids]}}, got {parents!r}")
