-- 007: the teacher's CPU latency beside a teacher_compression trial's own.
-- results.teacher_latency_ms: the trial's teacher timed in the same process and interleaved with the trial's model
-- (batch size 1, median milliseconds), so teacher_latency_ms / latency_ms is a speed-up measured under the same load
-- (views: compression.speedup_vs_teacher). NULL for students and for rows recorded before this migration.

ALTER TABLE results ADD COLUMN teacher_latency_ms DOUBLE;
