-- 005: the whole-study stages a sweep runs before its trials (sweep.study): fine-tuning the teacher, generating the
-- bootstrap data, labelling with the teacher (soft targets). One row per (sweep, task, stage, fingerprint): the
-- fingerprint hashes what the stage's output depends on (task definition, data, stage settings, upstream
-- fingerprints), so a changed setting is a new row and a resumed sweep finds the row and output it already has.
-- status: running (a driver killed mid-stage leaves it so; the next run redoes the stage and counts an attempt),
-- finished, cached (the output existed before this row did), failed (message says why).

CREATE TABLE stages (
    sweep        VARCHAR NOT NULL,
    task         VARCHAR NOT NULL,
    stage        VARCHAR NOT NULL,   -- teacher | bootstrap | soft_targets
    fingerprint  VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,   -- running | finished | cached | failed
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    seconds      DOUBLE,             -- wall time of the Ray task(s) that did the work
    device       VARCHAR,            -- cpu | cuda:N (N: the GPU's index on its node)
    node         VARCHAR,            -- the Ray node: ip/node-id prefix
    output       VARCHAR,            -- the teacher directory, the bootstrap file, the soft-target store directory
    message      VARCHAR,            -- the error of a failed stage, or a note
    detail       JSON,               -- stage specifics: settings, shard count, rows labelled, teacher dev metrics
    attempts     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (sweep, task, stage, fingerprint)
);
