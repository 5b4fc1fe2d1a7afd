-- 006: teacher-compression trials (stage teacher_compression): a smaller transformer made from the task's fine-tuned
-- teacher, by BERT-of-Theseus (successor layers replace the teacher's blocks) or BERT-Vision (a small head over the
-- frozen teacher's per-layer hidden states).
-- trials.teacher: the teacher directory a teacher_compression trial started from (NULL for student trials).
-- results.trainable_params: the parameters the method trained (a Theseus successor, a BERT-Vision head), next to
-- params (every parameter inference needs: the whole saved model); results.latency_ms: CPU forward latency at batch
-- size 1, median milliseconds; results.layers: the transformer layers inference runs.
-- Rows recorded before this migration keep NULL in the new columns.

ALTER TABLE trials ADD COLUMN teacher VARCHAR;
ALTER TABLE results ADD COLUMN trainable_params BIGINT;
ALTER TABLE results ADD COLUMN latency_ms DOUBLE;
ALTER TABLE results ADD COLUMN layers INTEGER;
