"""The Pareto-aware successive-halving scheduler in Ray Tune: :class:`HalvingRun` keeps the decisions of one
distillation run (``sweep.pareto_halving`` decides), :class:`ParetoHalvingScheduler` is the Tune ``TrialScheduler``
that asks it at each rung result. Tune drives a scheduler on the driver, so this works alike with fractional GPUs and
trials on several nodes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from sweep.pareto_halving import Decision, HalvingSettings, ParetoHalving, RungResult
from trainables.trial import RUNG_KEY, TrialOutcome


class HalvingRun:
    """The scheduler's state over a distillation run: the rule with every rung result recorded so far (those of a
    previous run replayed from the database first: :meth:`replay`), each trial's size and group (known before
    training), and the decisions of this run by trial id."""

    def __init__(
        self, settings: HalvingSettings, sizes: dict[str, float], groups: dict[str, str], max_epochs: int
    ) -> None:
        self.rule = ParetoHalving(settings)
        self.sizes, self.groups, self.max_epochs = sizes, groups, max_epochs
        self.decisions: dict[str, dict[int, Decision]] = {}
        self.epochs: dict[str, int] = {}  # trial id -> epochs it trained (the trials of this run that ended)

    def count_epochs(self, outcome: TrialOutcome, trial_id: str) -> None:
        """An ended trial's epochs, for :meth:`summary` (a failed trial counts what it reported: usually none)."""
        self.epochs[trial_id] = int(outcome.metrics.get("epochs") or len(outcome.history))

    def summary(self) -> str:
        """``stopped 5 of 8 trials (3 at epoch 1, 2 at epoch 3); 23 trial-epochs trained of at most 80 without the
        scheduler (29%)``."""
        by_rung = self.stopped_by_rung()
        stopped = sum(by_rung.values())
        where = ", ".join(f"{n} at epoch {r}" for r, n in by_rung.items())
        used, full = sum(self.epochs.values()), len(self.epochs) * self.max_epochs
        share = f" ({100 * used / full:.0f}%)" if full else ""
        return (
            f"stopped {stopped} of {len(self.epochs)} trials"
            + (f" ({where})" if where else "")
            + f"; {used} trial-epochs trained of at most {full} without the scheduler{share}"
        )

    def replay(self, entries: list[dict[str, Any]]) -> int:
        """Feed the rung results recorded in the database (``ExperimentStore.rung_entries``) back in, in their
        arrival order; returns how many."""
        results = [
            RungResult(e["trial_id"], e["rung_group"], int(e["rung"]), e["rung_score"], e["rung_size"], e["rung_seq"])
            for e in entries
        ]
        self.rule.replay(results)
        return len(results)

    def on_rung(self, trial_id: str, rung: int, score: float) -> Decision:
        d = self.rule.decide(trial_id, self.groups[trial_id], rung, score, self.sizes[trial_id])
        self.decisions.setdefault(trial_id, {})[rung] = d
        return d

    def reason(self, trial_id: str) -> str | None:
        stops = [d for d in self.decisions.get(trial_id, {}).values() if d.stop]
        return stops[-1].reason if stops else None

    def stopped_at(self, trial_id: str) -> int | None:
        stops = [r for r, d in self.decisions.get(trial_id, {}).items() if d.stop]
        return stops[-1] if stops else None

    def annotate(self, trial_id: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``history`` with each rung epoch's decision in it (rung, rung_seq, rung_score, rung_size, rung_group,
        rung_decision): what :meth:`replay` reads back from the database."""
        decided = self.decisions.get(trial_id, {})
        out = []
        for h in history:
            d = decided.get(h.get("epoch"))
            if d is not None:
                r = d.result
                h = {
                    **h,
                    "rung": r.rung,
                    "rung_seq": r.seq,
                    "rung_score": r.score,
                    "rung_size": r.size,
                    "rung_group": r.group,
                    "rung_decision": "stop" if d.stop else "continue",
                }
            out.append(h)
        return out

    def stopped_by_rung(self) -> dict[int, int]:
        """How many trials of this run were stopped at each rung (by its epoch)."""
        return dict(sorted(Counter(r for t in self.decisions if (r := self.stopped_at(t)) is not None).items()))


class ParetoHalvingScheduler(FIFOScheduler):
    """Tune's side: a trial's result at a rung (``trainables.distill.RUNG_KEY``) goes to :class:`HalvingRun`, which
    says STOP or CONTINUE; every other result continues. ``trial_id_of(tune_trial)``: the trial's id."""

    def __init__(self, run: HalvingRun, trial_id_of: Callable[[Any], str]) -> None:
        super().__init__()
        self.run, self.trial_id_of = run, trial_id_of

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if RUNG_KEY not in result:
            return TrialScheduler.CONTINUE
        d = self.run.on_rung(self.trial_id_of(trial), int(result[RUNG_KEY]), float(result["score"]))
        return TrialScheduler.STOP if d.stop else TrialScheduler.CONTINUE
