-- 003: the user's own datasets as first-class tasks.
-- results: macro-F1 (the headline metric a custom task may choose) and the optional test split, scored once at the
-- best epoch (test_score is the task's metric on it). NULL where the task or trial has none; rows recorded before
-- this migration keep NULL.
-- class_metrics: per trial, split and class: precision, recall, F1, support and the confusion row (counts per
-- predicted label id, in label-id order).
-- baselines: macro_f1, for reference points of a custom task; user reference points use source 'user' (featherweight
-- db add-baseline) or 'spec' (a sweep spec's tasks.<task>.baselines).

ALTER TABLE results ADD COLUMN macro_f1 DOUBLE;
ALTER TABLE results ADD COLUMN test_score DOUBLE;
ALTER TABLE results ADD COLUMN test_accuracy DOUBLE;
ALTER TABLE results ADD COLUMN test_f1 DOUBLE;
ALTER TABLE results ADD COLUMN test_macro_f1 DOUBLE;

ALTER TABLE baselines ADD COLUMN macro_f1 DOUBLE;

CREATE TABLE class_metrics (
    sweep      VARCHAR NOT NULL,
    trial_id   VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,   -- validation | validation_matched | ... | test
    label_id   INTEGER NOT NULL,
    label      VARCHAR,            -- the class name
    precision  DOUBLE,
    recall     DOUBLE,
    f1         DOUBLE,
    support    BIGINT,             -- examples of this class in the split
    predicted  BIGINT[],           -- confusion row: how many of this class were predicted as each label id
    PRIMARY KEY (sweep, trial_id, split, label_id)
);
