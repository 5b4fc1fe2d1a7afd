-- depends on: trial_results, trial_latency
-- pareto_points: every finished trial and every baseline as a (size, score) point, per sweep, task, score measure
-- (score | accuracy | f1 | macro_f1) and size measure (disk_bytes | gzip_bytes | params), with two flags:
--   on_skyline        no other point of the same partition (trials of both stages and baselines) dominates it;
--   on_stage_skyline  no other trial of the same stage dominates it (the frontier stage 2 picks its parents from);
--                     NULL for baselines.
-- A point dominates another when it is no larger and scores no lower, and is strictly better in one of the two;
-- equal points do not dominate each other, so ties are all on the skyline. The rule is written once (judged) and
-- applied to both frontiers: every point is judged within 'all', every trial once more within its 'stage'.
-- Baselines (thesis rows, the sweep's measured teachers, user reference points) join every sweep that has trials on
-- their task, and only on it (thesis rows exist for sst2, qqp and mnli alone); one recorded for a sweep joins that
-- sweep only. A baseline without a gzip size uses its disk size, as thesis table 7.5 does for its reference models.
-- Size 'params' of a compress-stage trial is its non-zero parameter count (nonzero_params); of a teacher_compression
-- trial (Theseus, BERT-Vision) its total parameter count: every parameter inference needs, frozen teacher layers
-- included (trainable_params, the part the method trained, only rides along). Teacher-compression trials are points
-- like any trial: the 'all' frontier puts the measured teacher, Theseus and BERT-Vision models, students and
-- compressed students on one skyline; their stage frontier is their own (stage 2 picks parents from 'distill' only).
-- teacher, trainable_params, latency_ms, layers and settings (the method's settings, JSON) describe teacher_compression
-- trials and are NULL for other points.
-- Size measures latency_ms_torch and latency_ms_onnxruntime put a trial at its batch-1 CPU latency (median ms) in that
-- runtime (trial_latency: sweeps that measure it); baselines have no latency and are not on those frontiers.
-- Points are placed by dev figures; test_score (a trial's score on the optional test split) only rides along.
with

measures as (
    select score_measure, size_measure
    from (values ('score'), ('accuracy'), ('f1'), ('macro_f1')) s(score_measure)
    cross join (
        values ('disk_bytes'), ('gzip_bytes'), ('params'), ('latency_ms_torch'), ('latency_ms_onnxruntime')
    ) z(size_measure)
),

latencies as (
    select
        sweep, trial_id,
        max(p50_ms) filter (where runtime = 'torch') as latency_ms_torch,
        max(p50_ms) filter (where runtime = 'onnxruntime') as latency_ms_onnxruntime
    from trial_latency
    group by sweep, trial_id
),

trial_points as (
    select
        t.sweep, t.task, m.score_measure, m.size_measure,
        'trial' as kind, t.trial_id, t.parent_trial_id, t.stage, t.label as name, null as source,
        t.arch, t.embedding, t.emb_dim, t.vocab_size, t.alpha, t.temperature, t.bootstrap, t.seed,
        t.pruning, t.quantization,
        case m.score_measure
            when 'score' then t.score when 'accuracy' then t.accuracy when 'f1' then t.f1 else t.macro_f1
        end as score_value,
        t.test_score,
        case m.size_measure
            when 'disk_bytes' then t.disk_bytes when 'gzip_bytes' then t.gzip_bytes
            -- a pruned student counts the parameters it kept (its zeros cost nothing once compressed)
            when 'params' then case when t.stage = 'compress' then coalesce(t.nonzero_params, t.params) else t.params end
            when 'latency_ms_torch' then l.latency_ms_torch
            when 'latency_ms_onnxruntime' then l.latency_ms_onnxruntime
        end::double as size_value,
        t.teacher, t.trainable_params, t.latency_ms, t.layers,
        t.teacher_latency_ms / nullif(t.latency_ms, 0) as speedup_vs_teacher,
        t.settings,
        -- agreement with the teacher on dev (null where the teacher's dev outputs are unknown; baselines: null)
        t.fidelity
    from trial_results t
    left join latencies l using (sweep, trial_id)
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
        case m.score_measure
            when 'score' then b.score when 'accuracy' then b.accuracy when 'f1' then b.f1 else b.macro_f1
        end as score_value,
        null as test_score,
        case m.size_measure
            when 'disk_bytes' then b.disk_bytes
            when 'gzip_bytes' then coalesce(b.gzip_bytes, b.disk_bytes)
            when 'params' then b.params
        end::double as size_value,
        null as teacher, null as trainable_params, null as latency_ms, null as layers,
        null::double as speedup_vs_teacher, null::json as settings
    from baselines b
    join sweep_tasks st on st.task = b.task and (b.sweep is null or b.sweep = st.sweep)
    cross join measures m
),

points as materialized (
    select *, row_number() over () as point_id
    from (
        select * from trial_points where score_value is not null and size_value is not null
        union all by name
        select * from baseline_points where score_value is not null and size_value is not null
    )
),

frontiers as (
    -- each point once per frontier it belongs to; frontier_stage is the extra partition key of the stage frontier
    select point_id, sweep, task, score_measure, size_measure, score_value, size_value,
        'all' as frontier, null as frontier_stage
    from points
    union all
    select point_id, sweep, task, score_measure, size_measure, score_value, size_value,
        'stage' as frontier, stage as frontier_stage
    from points where kind = 'trial'
),

compared as (
    select
        *,
        -- best score among strictly smaller points, and among points of exactly this size
        max(score_value) over (
            partition by frontier, frontier_stage, sweep, task, score_measure, size_measure
            order by size_value
            range between unbounded preceding and current row exclude group
        ) as best_smaller_score,
        max(score_value) over (
            partition by frontier, frontier_stage, sweep, task, score_measure, size_measure, size_value
        ) as best_same_size_score
    from frontiers
),

judged as (
    -- the dominance rule: nothing of equal size scores higher, nothing smaller scores as high
    select
        point_id,
        frontier,
        score_value >= best_same_size_score
            and (best_smaller_score is null or score_value > best_smaller_score) as non_dominated
    from compared
),

flags as (
    select
        point_id,
        bool_or(non_dominated) filter (where frontier = 'all') as on_skyline,
        bool_or(non_dominated) filter (where frontier = 'stage') as on_stage_skyline
    from judged
    group by point_id
),

flagged as (
    select p.* exclude (point_id), f.on_skyline, f.on_stage_skyline
    from points p
    join flags f using (point_id)
)

select * from flagged
