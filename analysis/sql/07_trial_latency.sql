-- depends on: none
-- trial_latency: one row per sweep, trial and runtime (torch | onnxruntime) whose latency was measured (sweeps with
-- the spec's measure: key; latency table, migration 008): the trial's batch-1 latency (p50_ms median, p90_ms 90th
-- percentile, milliseconds), throughput (examples per second in batches of batch_size), threads and machine, and
-- teacher_p50_ms: the teacher's PyTorch batch-1 median timed in the same process, interleaved with the trial's model,
-- so speedup_vs_teacher = teacher_p50_ms / p50_ms compares like with like. Trials of sweeps that measured nothing have
-- no rows.
select
    l.sweep, l.trial_id, l.runtime, l.precision, l.p50_ms, l.p90_ms, l.throughput, l.batch_size, l.threads,
    l.examples, l.machine,
    t.p50_ms as teacher_p50_ms,
    t.p50_ms / nullif(l.p50_ms, 0) as speedup_vs_teacher
from latency l
left join latency t
    on t.sweep = l.sweep and t.trial_id = l.trial_id and t.model = 'teacher' and t.runtime = 'torch'
where l.model = 'trial'
