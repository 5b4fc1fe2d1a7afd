"""The Pareto-aware successive-halving rule on hand-made rung results: fronts, crowding ties, asynchronous
promotion, a small model with a modest score kept, the same decisions on replay, and seeds near the frontier."""

from __future__ import annotations

import math

from sweep.pareto_halving import (
    HalvingSettings,
    ParetoHalving,
    RungResult,
    crowding,
    near_front,
    nondominated_fronts,
    ranking,
    rungs_for,
)


def test_nondominated_fronts_peel_layer_by_layer():
    points = [(0.90, 100), (0.85, 50), (0.80, 200), (0.84, 60), (0.70, 300), (0.85, 50)]
    # 0 and 1 (and its equal, 5) are dominated by none; 3 only by 1 and 5; 2 also by 3; 4 by every other point
    assert nondominated_fronts(points) == [[0, 1, 5], [3], [2], [4]]


def test_crowding_keeps_the_ends_first_and_spreads_the_middle():
    points = [(0.90, 100), (0.80, 10), (0.85, 50), (0.86, 60)]
    dist = crowding(points, [0, 1, 2, 3])
    assert dist[0] == dist[1] == math.inf
    # 2 sits in a wider gap (0.80..0.86, 10..60) than 3 (0.85..0.90, 50..100) on score, the same on size
    assert dist[2] > dist[3]
    # within a front the larger crowding distance ranks first, then arrival
    results = [RungResult(f"t{i}", "g", 1, s, z, seq=i) for i, (s, z) in enumerate(points)]
    assert ranking(results) == [0, 1, 2, 3]


def _feed(rule: ParetoHalving, results: list[tuple[str, float, float]], rung: int = 1, group: str = "g"):
    return {tid: rule.decide(tid, group, rung, score, size) for tid, score, size in results}


def test_dominated_trials_stop_and_say_by_whom():
    rule = ParetoHalving(HalvingSettings(eta=2))
    d = _feed(rule, [("big-good", 0.90, 1000), ("small-good", 0.88, 100), ("big-bad", 0.70, 2000)])
    assert not d["big-good"].stop and not d["small-good"].stop
    stopped = d["big-bad"]
    assert stopped.stop and stopped.position == 2 and stopped.kept == 2 and stopped.recorded == 3
    assert "dominated at the epoch-1 rung by big-good" in stopped.reason


def test_a_small_model_with_a_modest_score_keeps_going():
    rule = ParetoHalving(HalvingSettings(eta=3))
    d = _feed(
        rule,
        [("a", 0.90, 5000), ("b", 0.89, 6000), ("c", 0.88, 7000), ("d", 0.87, 8000), ("tiny", 0.60, 50)],
    )
    # tiny scores far below the rest, but nothing as small scores better: it is on the rung's frontier
    assert not d["tiny"].stop
    assert d["b"].stop and d["c"].stop and d["d"].stop  # each dominated by a (better and smaller)


def test_asynchronous_promotion_decides_on_what_has_arrived():
    rule = ParetoHalving(HalvingSettings(eta=3))
    # the first result at a rung always goes on; a later better-and-smaller one does not stop it retroactively
    first = rule.decide("early-weak", "g", 1, 0.60, 900)
    assert not first.stop
    assert not rule.decide("strong", "g", 1, 0.90, 100).stop
    late = rule.decide("late-weak", "g", 1, 0.60, 900)
    assert late.stop  # the same result arriving after "strong" is dominated and outside the top third
    # rungs and groups are ranked separately
    assert not rule.decide("late-weak", "g", 3, 0.60, 900).stop
    assert not rule.decide("other-task", "h", 1, 0.10, 5000).stop


def test_the_top_third_of_dominated_trials_goes_on_while_the_front_is_small():
    rule = ParetoHalving(HalvingSettings(eta=3))
    d = _feed(rule, [("s", 0.95, 10), ("w1", 0.60, 100), ("w2", 0.70, 100), ("w3", 0.80, 100)])
    # s dominates the rest; ceil(n/3) go on: 1 of 2, 1 of 3, then 2 of 4, so w3 (second best) goes on
    assert [d[t].stop for t in ("s", "w1", "w2", "w3")] == [False, True, True, False]
    assert d["w3"].kept == 2 and d["w3"].position == 1


def test_replay_gives_the_same_decisions_and_continues_the_arrival_numbers():
    results = [(f"t{i}", 0.5 + ((i * 37) % 11) / 40, 100 + ((i * 53) % 17) * 10) for i in range(20)]
    live = ParetoHalving(HalvingSettings(eta=3))
    decisions = [live.decide(tid, "g", 1, s, z) for tid, s, z in results]
    recorded = [d.result for d in decisions[:12]]
    resumed = ParetoHalving(HalvingSettings(eta=3))
    replayed = resumed.replay(list(reversed(recorded)))  # whatever order the database returns, arrival order counts
    assert [d.stop for d in replayed] == [d.stop for d in decisions[:12]]
    assert resumed.next_seq == 12
    later = [resumed.decide(tid, "g", 1, s, z) for tid, s, z in results[12:]]
    assert [(d.stop, d.position, d.result.seq) for d in later] == [
        (d.stop, d.position, d.result.seq) for d in decisions[12:]
    ]


def test_a_trial_reported_again_after_a_crash_counts_once():
    rule = ParetoHalving(HalvingSettings(eta=2))
    rule.decide("a", "g", 1, 0.8, 100)
    rule.decide("a", "g", 1, 0.8, 100)
    assert len(rule.recorded[("g", 1)]) == 1


def test_rungs_stop_below_max_epochs():
    assert rungs_for(HalvingSettings(), 50) == (1, 3, 9, 27)
    assert rungs_for(HalvingSettings(eta=2, grace=3), 13) == (3, 6, 12)
    assert rungs_for(HalvingSettings(grace=5), 5) == ()


def test_seeds_go_only_to_configurations_near_the_frontier():
    points = {"best": (0.90, 1000), "small": (0.80, 10), "close": (0.895, 2000), "far": (0.85, 3000)}
    assert near_front(points, 1.0) == {"best", "small", "close"}
    assert near_front(points, 0.0) == {"best", "small"}
    assert near_front(points, 6.0) == set(points)
