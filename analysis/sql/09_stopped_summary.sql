-- depends on: none
-- stopped_summary: the configurations (as in seed_summary: every setting but the seed) with trials the distillation
-- scheduler (`scheduler: pareto_halving`) stopped, and what those trials scored where they stopped. A stopped trial's
-- results row holds its best dev score up to its rung, so these are early scores, never final ones: the report shows
-- them in brackets beside the finished configurations. `method` is named as in seed_summary.
with

stopped as (
    select t.*, r.score, r.accuracy, r.f1, r.accuracy_matched, r.accuracy_mismatched, r.epochs, r.params, r.disk_bytes
    from main.trials t
    join main.results r using (sweep, trial_id)
    where t.status = 'stopped'
),

grouped as (
    select
        sweep,
        stage,
        task,
        arch,
        embedding,
        emb_dim,
        vocab_size,
        alpha,
        temperature,
        bootstrap,
        pooling,
        count(*) as n_stopped,
        list(seed order by seed) as seeds,
        list(trial_id order by seed, trial_id) as trial_ids,
        min(stopped_at_rung) as first_rung,
        max(stopped_at_rung) as last_rung,
        sum(epochs) as epochs,
        avg(score) as score_mean,
        max(score) as score_max,
        avg(accuracy) as accuracy_mean,
        avg(f1) as f1_mean,
        avg(accuracy_matched) as accuracy_matched_mean,
        avg(accuracy_mismatched) as accuracy_mismatched_mean,
        avg(params) as params,
        avg(disk_bytes) as disk_bytes
    from stopped
    group by all
)

select
    *,
    case
        when alpha is null or alpha = 1 then 'no distill'
        else 'alpha ' || regexp_replace(printf('%.4f', alpha), '\.?0+$', '')
    end || case when bootstrap then ' + b' else '' end as method
from grouped
