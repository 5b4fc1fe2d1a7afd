-- 008: CPU speed per runtime, for any trial (students, compressed students, compressed teachers) and the teacher
-- timed beside it. One row per (sweep, trial_id, model, runtime): model is 'trial' (the trial's own model) or
-- 'teacher' (its teacher, timed in the same process, interleaved with the trial's model, so the ratio of the two is
-- a speed-up under the same load); runtime is 'torch' (the PyTorch model) or 'onnxruntime' (its ONNX artefact).
-- p50_ms / p90_ms: batch size 1, median and 90th percentile milliseconds over dev examples; throughput: examples
-- per second in batches of batch_size; threads: the CPU threads both ran with; machine: processor, cores, host.
-- Written only for sweeps that ask for it (the spec's measure: key); rows of a trial go with it.

CREATE TABLE latency (
    sweep        VARCHAR NOT NULL,
    trial_id     VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,   -- trial | teacher
    runtime      VARCHAR NOT NULL,   -- torch | onnxruntime
    precision    VARCHAR,            -- float | int8
    p50_ms       DOUBLE,
    p90_ms       DOUBLE,
    throughput   DOUBLE,
    batch_size   INTEGER,
    threads      INTEGER,
    examples     INTEGER,
    machine      VARCHAR,
    PRIMARY KEY (sweep, trial_id, model, runtime)
);
