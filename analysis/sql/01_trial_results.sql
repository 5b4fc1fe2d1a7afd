-- depends on: none
-- trial_results: one row per finished trial: its configuration, metrics and sizes side by side.
-- label is a thesis-style model name: BiLSTM_BPE100, RNN_Hash25 + p + q (p = pruned, q = quantized); a
-- teacher_compression trial (a smaller transformer made from the task's teacher) is named by its method and the
-- transformer layers inference runs: Theseus-3L, BERT-Vision-4L adapter + q (the BERT-Vision head after the layers).
-- teacher, trainable_params, latency_ms, layers, teacher_latency_ms and settings (config.settings: the method's knobs,
-- JSON) are NULL for student trials; the first four also for rows from before migration 006, teacher_latency_ms for
-- rows from before 007.
with

trials as (
    select * from main.trials where status = 'finished'
),

results as (
    select * from main.results
),

labelled as (
    select
        t.*,
        case
            when t.stage = 'teacher_compression' then
                case t.arch when 'theseus' then 'Theseus' when 'bertvision' then 'BERT-Vision' else t.arch end
                || coalesce('-' || r.layers::varchar || 'L', '')
                -- the BERT-Vision head: as the spec set it, else as the core resolved its default
                || case when t.arch = 'bertvision' then coalesce(
                    ' ' || json_extract_string(t.config, '$.settings.head'),
                    ' ' || json_extract_string(t.config, '$.resolved.bertvision.head'), '') else '' end
            else
                case t.arch when 'bilstm' then 'BiLSTM' when 'rnn' then 'RNN' when 'ffn' then 'FFN' else t.arch end
                || '_'
                || case t.embedding when 'bpe' then 'BPE' when 'hash' then 'Hash' when 'char' then 'Char'
                    else t.embedding end
                || t.emb_dim::varchar
        end
            || case when t.pruning is not null then ' + p' else '' end
            || case when t.quantization is not null then ' + q' else '' end
            as label
    from trials t
    left join results r using (sweep, trial_id)
),

joined as (
    select
        t.sweep,
        t.trial_id,
        t.parent_trial_id,
        t.stage,
        t.task,
        t.label,
        t.arch,
        t.embedding,
        t.emb_dim,
        t.vocab_size,
        t.alpha,
        t.temperature,
        t.bootstrap,
        t.seed,
        t.pooling,
        t.pruning,
        t.quantization,
        t.status,
        -- teacher compression: the teacher directory the trial started from
        t.teacher,
        case when t.stage = 'teacher_compression' then json_extract(t.config, '$.settings') end as settings,
        r.score,
        r.accuracy,
        r.f1,
        r.accuracy_matched,
        r.accuracy_mismatched,
        r.macro_f1,
        -- agreement with the teacher on dev: the fraction of dev examples whose predicted label is the teacher's
        -- (recorded when the teacher's dev outputs are known: a teacher given by a file that covers dev)
        try_cast(json_extract(r.metrics, '$.fidelity') as double) as fidelity,
        -- the optional test split, scored once with the best epoch's weights (test_score: the task's metric)
        r.test_score,
        r.test_accuracy,
        r.test_f1,
        r.test_macro_f1,
        r.best_epoch,
        r.epochs,
        r.params,
        r.params_embedding,
        r.params_encoder,
        r.params_classifier,
        r.nonzero_params,
        r.disk_bytes,
        r.gzip_bytes,
        r.ideal_bytes,
        -- teacher compression: parameters the method trained (params: every parameter inference needs), CPU latency
        -- at batch size 1 (median ms), transformer layers inference runs
        r.trainable_params,
        r.latency_ms,
        r.layers,
        -- the teacher timed interleaved with this model in the same process (migration 007), for the speed-up
        r.teacher_latency_ms,
        r.disk_bytes / 1e6 as disk_mb,
        r.gzip_bytes / 1e6 as gzip_mb,
        -- the size thesis table 7.5 reports: disk size for plain students, gzip size once pruned or quantized
        case when t.pruning is not null or t.quantization is not null then r.gzip_bytes else r.disk_bytes end
            as reported_bytes,
        t.seconds,
        -- where it ran: device (cpu | cuda:N, N the GPU's index on its node), the Ray node, software versions
        t.device,
        t.node,
        t.node_id,
        t.host,
        t.node_ip,
        t.gpu_model,
        t.torch_version,
        t.cuda_version,
        t.started_at,
        t.finished_at,
        t.checkpoint_path,
        t.config,
        r.metrics,
        r.sizes
    from labelled t
    left join results r using (sweep, trial_id)
)

select * from joined
