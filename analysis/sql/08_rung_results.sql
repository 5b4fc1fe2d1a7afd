-- depends on: none
-- rung_results: one row per rung result the distillation stage's scheduler (`scheduler: pareto_halving`) recorded:
-- the trial, the rung (an epoch), the dev score and parameter count it was ranked by there, its arrival order at the
-- driver (what a resumed sweep replays) and the decision (continue | stop); with the trial's status, the rung it
-- stopped at and why. Trials of a sweep without a scheduler have no rows here.
select
    e.sweep,
    e.trial_id,
    t.task,
    t.arch,
    t.embedding,
    t.emb_dim,
    t.alpha,
    t.bootstrap,
    t.seed,
    cast(json_extract(e.metrics, '$.rung') as integer) as rung,
    cast(json_extract(e.metrics, '$.rung_seq') as bigint) as arrival,
    cast(json_extract(e.metrics, '$.rung_score') as double) as score,
    cast(json_extract(e.metrics, '$.rung_size') as bigint) as params,
    json_extract_string(e.metrics, '$.rung_decision') as decision,
    t.status,
    t.stopped_at_rung,
    t.stop_reason
from main.epochs e
join main.trials t using (sweep, trial_id)
where json_extract(e.metrics, '$.rung') is not null
