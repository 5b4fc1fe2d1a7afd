-- depends on: trial_results
-- seed_summary: mean and sample standard deviation over seeds of every configuration (thesis tables 7.1-7.3).
-- A configuration is every trial_results setting except seed (and trial ids); sd is NULL when there is one seed.
-- method names the training recipe as the thesis' column headers do: "no distill", "no distill + b", "alpha 0.5 + b";
-- for a teacher_compression trial it is its method (theseus | bertvision), and its settings (JSON) are part of the
-- configuration, so Theseus runs with different replace rates are never averaged together.
with

finished as (
    select * from trial_results
),

grouped as (
    select
        sweep,
        stage,
        task,
        label,
        arch,
        embedding,
        emb_dim,
        vocab_size,
        alpha,
        temperature,
        bootstrap,
        pooling,
        pruning,
        quantization,
        settings::varchar as settings,
        count(*) as n_seeds,
        list(seed order by seed) as seeds,
        list(trial_id order by seed, trial_id) as trial_ids,
        avg(score) as score_mean,
        stddev_samp(score) as score_sd,
        min(score) as score_min,
        max(score) as score_max,
        avg(accuracy) as accuracy_mean,
        stddev_samp(accuracy) as accuracy_sd,
        avg(f1) as f1_mean,
        stddev_samp(f1) as f1_sd,
        avg(accuracy_matched) as accuracy_matched_mean,
        stddev_samp(accuracy_matched) as accuracy_matched_sd,
        avg(accuracy_mismatched) as accuracy_mismatched_mean,
        stddev_samp(accuracy_mismatched) as accuracy_mismatched_sd,
        avg(macro_f1) as macro_f1_mean,
        stddev_samp(macro_f1) as macro_f1_sd,
        avg(test_score) as test_score_mean,
        stddev_samp(test_score) as test_score_sd,
        avg(params) as params,
        avg(nonzero_params) as nonzero_params,
        avg(disk_bytes) as disk_bytes,
        avg(gzip_bytes) as gzip_bytes,
        avg(reported_bytes) as reported_bytes,
        avg(seconds) as seconds_mean
    from finished
    group by all
),

named as (
    select
        *,
        case
            when stage = 'teacher_compression' then arch
            when alpha is null or alpha = 1 then 'no distill'
            else 'alpha ' || regexp_replace(printf('%.4f', alpha), '\.?0+$', '')
        end || case when bootstrap then ' + b' else '' end as method,
        disk_bytes / 1e6 as disk_mb
    from grouped
)

select * from named
