"""Pareto-aware asynchronous successive halving: which distillation trials go on past a rung (pure, Ray-free).

A trial reports its dev score at each rung (epochs ``grace``, ``grace * eta``, ``grace * eta**2``, ... below its
``max_epochs``). It goes on only if it ranks in the top ``1/eta`` of the trials of its task recorded at that rung so
far, ranked by non-dominated sorting on (dev score: higher is better, size: smaller is better), ties within a front
broken by crowding distance (the front's ends, the smallest model and the best score, first), then by arrival; or if
no trial recorded there dominates it (it is on that rung's frontier so far: a small model with a modest score goes
on when nothing as small scores better). The
decision is made as the result arrives (asynchronous, as ASHA does: no waiting for a full rung; the first trial at a
rung always goes on), so it works the same with fractional GPUs and several nodes. Given the same results in the same
order (each carries its arrival number, ``seq``), :meth:`ParetoHalving.replay` rebuilds the same state, so a resumed
sweep makes the same decisions for what it had recorded.

:func:`near_front` picks the configurations whose other seeds are worth running ("seeds where they matter").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from featherweight_core.settings import setting, settings_of

KIND = "pareto_halving"
SEEDS_CHOICES = ("all", "first")


@dataclass(frozen=True)
class HalvingSettings:
    """The spec's ``scheduler:`` settings (``scheduler: pareto_halving`` takes every default)."""

    eta: int = setting(
        3, "reduction factor: a trial goes on past a rung if it ranks in the top 1/eta there", kind="int", minimum=2
    )
    grace: int = setting(1, "epochs before the first rung (rungs: grace, grace x eta, ...)", kind="int", minimum=1)
    seeds: str = setting(
        "all",
        "`all`: every seed of the grid runs under the scheduler; `first`: one seed per configuration first, the"
        " other seeds only for configurations within `seeds_margin` of the frontier",
        kind="choice",
        choices=SEEDS_CHOICES,
    )
    seeds_margin: float = setting(
        1.0,
        "with `seeds: first`: points of dev score (0-100) below the frontier a configuration may be and still get"
        " its other seeds",
        kind="float",
        minimum=0.0,
    )


SETTINGS = settings_of(HalvingSettings)


def rungs_for(settings: HalvingSettings, max_epochs: int) -> tuple[int, ...]:
    """The epochs a trial of ``max_epochs`` is judged at: grace, grace x eta, ... below ``max_epochs`` (at
    ``max_epochs`` it ends anyway).

    >>> rungs_for(HalvingSettings(), 30)
    (1, 3, 9, 27)
    >>> rungs_for(HalvingSettings(eta=2, grace=2), 8)
    (2, 4)
    """
    out, r = [], settings.grace
    while r < max_epochs:
        out.append(r)
        r *= settings.eta
    return tuple(out)


@dataclass(frozen=True)
class RungResult:
    """One trial's result at one rung: its group (the task: trials are ranked against those of the same task),
    dev score (a fraction, higher is better), size (smaller is better) and arrival number."""

    trial_id: str
    group: str
    rung: int
    score: float
    size: float
    seq: int


@dataclass(frozen=True)
class Decision:
    """What the rule decided for a result: ``stop`` or go on; ``position`` (0-based) among ``recorded`` results at
    the rung, of which the first ``kept`` go on; ``reason`` says why a stopped trial stopped."""

    result: RungResult
    stop: bool
    position: int
    recorded: int
    kept: int
    reason: str | None = None


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` = (score, size) is at least as good as ``b`` on both and better on one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def nondominated_fronts(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Indices of ``points`` (score, size) by front: front 0 is dominated by none, front k only by earlier fronts.

    >>> nondominated_fronts([(0.9, 10), (0.8, 5), (0.7, 20), (0.8, 10)])
    [[0, 1], [3], [2]]
    """
    n = len(points)
    dominated_by = [0] * n
    dominating: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j and dominates(points[i], points[j]):
                dominating[i].append(j)
                dominated_by[j] += 1
    fronts, current = [], [i for i in range(n) if dominated_by[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in dominating[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return fronts


def crowding(points: Sequence[tuple[float, float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each index of ``front``: the ends of each objective are infinite (kept first),
    the others the normalised gap between their neighbours, summed over score and size.

    >>> crowding([(0.9, 10), (0.8, 5), (0.85, 8)], [0, 1, 2])
    {0: inf, 1: inf, 2: 2.0}
    """
    dist = dict.fromkeys(front, 0.0)
    if len(front) <= 2:
        return dict.fromkeys(front, math.inf)
    for k in (0, 1):
        order = sorted(front, key=lambda i: (points[i][k], i))
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            dist[i] += (points[b][k] - points[a][k]) / (hi - lo)
    return dist


def ranking(results: Sequence[RungResult]) -> list[int]:
    """Indices of ``results`` best first: by front, then crowding distance (larger first), then arrival."""
    points = [(r.score, r.size) for r in results]
    order: list[int] = []
    for front in nondominated_fronts(points):
        dist = crowding(points, front)
        order += sorted(front, key=lambda i: (-dist[i], results[i].seq))
    return order


@dataclass
class ParetoHalving:
    """The decision rule with its state: the results recorded so far at each (group, rung)."""

    settings: HalvingSettings = field(default_factory=HalvingSettings)
    recorded: dict[tuple[str, int], list[RungResult]] = field(default_factory=dict)
    next_seq: int = 0

    def decide(self, trial_id: str, group: str, rung: int, score: float, size: float) -> Decision:
        """Record a trial's result at ``rung`` (arriving now) and decide whether it goes on."""
        return self._add(RungResult(trial_id, group, rung, float(score), float(size), self.next_seq))

    def replay(self, results: Iterable[RungResult]) -> list[Decision]:
        """Feed recorded results back in arrival order (a resume): the decisions they had, and the next arrival
        number after the last."""
        return [self._add(r) for r in sorted(results, key=lambda r: (r.seq, r.trial_id))]

    def _add(self, result: RungResult) -> Decision:
        self.next_seq = max(self.next_seq, result.seq + 1)
        at = self.recorded.setdefault((result.group, result.rung), [])
        at[:] = [r for r in at if r.trial_id != result.trial_id]  # a trial re-run after a crash counts once
        at.append(result)
        order = ranking(at)
        me = len(at) - 1
        position = order.index(me)
        kept = max(1, math.ceil(len(at) / self.settings.eta))
        better = [o for o in at if dominates((o.score, o.size), (result.score, result.size))]
        stop = position >= kept and bool(better)  # on the rung's frontier so far (dominated by none): goes on
        reason = self._reason(result, better, position, len(at), kept) if stop else None
        return Decision(result, stop, position, len(at), kept, reason)

    @staticmethod
    def _reason(r: RungResult, better: list[RungResult], position: int, recorded: int, kept: int) -> str:
        best = max(better, key=lambda o: (o.score, -o.size, -o.seq))  # the best-scoring trial that dominates it
        return (
            f"dominated at the epoch-{r.rung} rung by {best.trial_id} (score {best.score:.4f}, size {best.size:,.0f}"
            f" vs {r.score:.4f}, {r.size:,.0f}); ranked {position + 1} of {recorded}, the first {kept} go on"
        )


def near_front(points: dict[str, tuple[float, float]], margin_points: float) -> set[str]:
    """The keys of ``points`` (key -> (score, size)) whose score is within ``margin_points`` (score x 100) of the
    frontier at their size: of the best score of any point at that size or smaller.

    >>> sorted(near_front({"a": (0.90, 100), "b": (0.895, 200), "c": (0.80, 50), "d": (0.85, 300)}, 1.0))
    ['a', 'b', 'c']
    """
    out = set()
    for key, (score, size) in points.items():
        best = max(s for s, z in points.values() if z <= size)
        if (best - score) * 100 <= margin_points + 1e-9:
            out.add(key)
    return out
