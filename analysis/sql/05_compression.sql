-- depends on: trial_results
-- compression: size ratios of every finished trial against the teacher its sweep used (measured, see
-- record_teacher) and against the RoBERTa-large reference of thesis table 7.5, plus the change against the parent a
-- compress-stage trial came from. Ratios are "times smaller" (reference size / this size), like table 7.5.
-- reported_bytes is the size table 7.5 uses: disk size for plain students, gzip size once pruned or quantized; the
-- teacher and reference sizes are disk sizes. Baselines appear too (kind = 'baseline'), once per sweep and task.
-- The teacher of a trial is the sweep's measured teacher of its task named by the trial: a student's config.teacher,
-- or for a teacher_compression trial (Theseus, BERT-Vision) the baseline name record_teacher gives its teacher
-- directory (trials.teacher: 'teacher:' + the directory's name, its parent's when it is called 'teacher'); failing
-- that, the task's most recently measured teacher. For teacher_compression trials the ratios read the same way:
-- ratio_vs_teacher compares the teacher's disk size with the trial's reported size (disk, gzip once quantized),
-- param_ratio_vs_teacher counts every parameter inference needs (a BERT-Vision model keeps the frozen teacher layers
-- it reads plus its head: smaller only by the layers it drops, about 1x with all of them; its trained part is
-- trainable_params), score_retained_vs_teacher is the fraction of the teacher's dev score kept, and speedup_vs_teacher
-- is teacher_latency_ms / latency_ms (CPU, batch size 1; the teacher timed interleaved with the model in the trial's
-- process, so both saw the same load). trainable_params, latency_ms, teacher_latency_ms and layers ride along (NULL
-- for students and baselines).
with

finished as (
    select * from trial_results
),

teacher_candidates as (
    select
        t.sweep, t.trial_id,
        b.name as teacher, b.score as teacher_score, b.params as teacher_params, b.disk_bytes as teacher_disk_bytes,
        row_number() over (
            partition by t.sweep, t.trial_id
            order by
                (b.name = json_extract_string(t.config, '$.teacher') or b.name = t.teacher_name) desc nulls last,
                b.recorded_at desc, b.name
        ) as pick
    from (
        select
            *,
            -- record_teacher's name of a teacher directory (featherweight_core.teacher.teacher_baseline)
            case when teacher is not null then
                'teacher:' || case when string_split(rtrim(teacher, '/'), '/')[-1] = 'teacher'
                    then string_split(rtrim(teacher, '/'), '/')[-2]
                    else string_split(rtrim(teacher, '/'), '/')[-1] end
            end as teacher_name
        from finished
    ) t
    join baselines b on b.source = 'measured' and b.sweep = t.sweep and b.task = t.task
),

teachers as (
    select * exclude (pick) from teacher_candidates where pick = 1
),

reference as (
    -- RoBERTa-large per task; tasks the thesis did not run (custom, synthetic) have none: their ratios are NULL
    select task, disk_bytes as reference_bytes, score as reference_score
    from baselines where name = 'RoBERTa-large' and source = 'thesis table 7.5'
),

trial_rows as (
    select
        t.sweep, t.task, 'trial' as kind, t.trial_id, t.parent_trial_id, t.stage, t.label as name,
        t.arch, t.embedding, t.emb_dim, t.vocab_size, t.alpha, t.bootstrap, t.seed, t.pruning, t.quantization,
        t.score, t.accuracy, t.f1, t.accuracy_matched, t.accuracy_mismatched, t.macro_f1, t.test_score,
        t.params, t.nonzero_params, t.disk_bytes, t.gzip_bytes, t.reported_bytes,
        t.trainable_params, t.latency_ms, t.teacher_latency_ms, t.layers, t.teacher as teacher_dir,
        th.teacher, th.teacher_score, th.teacher_params, th.teacher_disk_bytes,
        r.reference_bytes,
        p.score as parent_score, p.reported_bytes as parent_reported_bytes, p.params as parent_params,
        p.nonzero_params as parent_nonzero_params
    from finished t
    left join teachers th using (sweep, trial_id)
    left join reference r on r.task = t.task
    left join finished p on p.sweep = t.sweep and p.trial_id = t.parent_trial_id
),

sweep_tasks as (
    select distinct sweep, task from finished
),

baseline_rows as (
    select
        st.sweep, b.task, 'baseline' as kind, null as trial_id, null as parent_trial_id, null as stage, b.name,
        null as arch, null as embedding, null as emb_dim, null as vocab_size, null as alpha, null as bootstrap,
        null as seed, null as pruning, null as quantization,
        b.score, b.accuracy, b.f1, b.accuracy_matched, b.accuracy_mismatched, b.macro_f1, null as test_score,
        b.params, null as nonzero_params, b.disk_bytes, b.gzip_bytes, b.disk_bytes as reported_bytes,
        null as teacher, null as teacher_score, null as teacher_params, null as teacher_disk_bytes,
        r.reference_bytes,
        null as parent_score, null as parent_reported_bytes, null as parent_params, null as parent_nonzero_params
    from baselines b
    join sweep_tasks st on st.task = b.task and (b.sweep is null or b.sweep = st.sweep)
    left join reference r on r.task = b.task
),

all_rows as (
    select * from trial_rows
    union all by name
    select * from baseline_rows
),

ratios as (
    select
        *,
        reported_bytes / 1e6 as reported_mb,
        teacher_disk_bytes / nullif(reported_bytes, 0) as ratio_vs_teacher,
        teacher_disk_bytes / nullif(disk_bytes, 0) as disk_ratio_vs_teacher,
        teacher_disk_bytes / nullif(gzip_bytes, 0) as gzip_ratio_vs_teacher,
        teacher_params / nullif(params, 0) as param_ratio_vs_teacher,
        score / nullif(teacher_score, 0) as score_retained_vs_teacher,
        teacher_latency_ms / nullif(latency_ms, 0) as speedup_vs_teacher,
        reference_bytes / nullif(reported_bytes, 0) as ratio_vs_roberta,
        reference_bytes / nullif(disk_bytes, 0) as disk_ratio_vs_roberta,
        reference_bytes / nullif(gzip_bytes, 0) as gzip_ratio_vs_roberta,
        parent_reported_bytes / nullif(reported_bytes, 0) as ratio_vs_parent,
        parent_nonzero_params / nullif(nonzero_params, 0) as nonzero_ratio_vs_parent,
        score - parent_score as score_change_vs_parent
    from all_rows
)

select * from ratios
