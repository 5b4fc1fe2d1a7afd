-- pareto_points: every finished trial and every baseline as a (size, score) point, per sweep, task, score measure
-- (score | accuracy | f1) and size measure (disk_bytes | gzip_bytes | params), flagged on_skyline when no other
-- point of the same partition dominates it. A point dominates another when it is no larger and scores no lower,
-- and is strictly better in one of the two; equal points do not dominate each other, so ties are all on the skyline.
-- Baselines (thesis rows and the sweep's measured teachers) join every sweep that has trials on their task; a
-- baseline without a gzip size uses its disk size, as thesis table 7.5 does for its reference models.
with

measures as (
    select score_measure, size_measure
    from (values ('score'), ('accuracy'), ('f1')) s(score_measure)
    cross join (values ('disk_bytes'), ('gzip_bytes'), ('params')) z(size_measure)
),

trial_points as (
    select
        t.sweep, t.task, m.score_measure, m.size_measure,
        'trial' as kind, t.trial_id, t.parent_trial_id, t.stage, t.label as name, null as source,
        t.arch, t.embedding, t.emb_dim, t.vocab_size, t.alpha, t.temperature, t.bootstrap, t.seed,
        t.pruning, t.quantization,
        case m.score_measure when 'score' then t.score when 'accuracy' then t.accuracy else t.f1 end as score_value,
        case m.size_measure
            when 'disk_bytes' then t.disk_bytes when 'gzip_bytes' then t.gzip_bytes else t.params
        end::double as size_value
    from trial_results t
    cross join measures m
),

sweep_tasks as (
    select distinct sweep, task from trial_results
),

baseline_points as (
    select
        st.sweep, b.task, m.score_measure, m.size_measure,
        'baseline' as kind, null as trial_id, null as parent_trial_id, null as stage, b.name, b.source,
        null as arch, null as embedding, null as emb_dim, null as vocab_size, null as alpha, null as temperature,
        null as bootstrap, null as seed, null as pruning, null as quantization,
        case m.score_measure when 'score' then b.score when 'accuracy' then b.accuracy else b.f1 end as score_value,
        case m.size_measure
            when 'disk_bytes' then b.disk_bytes
            when 'gzip_bytes' then coalesce(b.gzip_bytes, b.disk_bytes)
            else b.params
        end::double as size_value
    from baselines b
    join sweep_tasks st on st.task = b.task and (b.sweep is null or b.sweep = st.sweep)
    cross join measures m
),

points as (
    select * from trial_points where score_value is not null and size_value is not null
    union all
    select * from baseline_points where score_value is not null and size_value is not null
),

compared as (
    select
        *,
        -- best score among strictly smaller points, and among points of exactly this size
        max(score_value) over (
            partition by sweep, task, score_measure, size_measure
            order by size_value
            range between unbounded preceding and current row exclude group
        ) as best_smaller_score,
        max(score_value) over (partition by sweep, task, score_measure, size_measure, size_value) as best_same_size_score
    from points
),

flagged as (
    select
        * exclude (best_smaller_score, best_same_size_score),
        score_value >= best_same_size_score
            and (best_smaller_score is null or score_value > best_smaller_score) as on_skyline
    from compared
)

select * from flagged
