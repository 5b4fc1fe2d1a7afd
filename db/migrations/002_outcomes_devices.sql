-- 002: why a sweep ended, and where each trial ran.
-- sweeps.message: a human-readable outcome ("12 of 12 trials failed; first error: ..."), NULL while running.
-- trials.device: the torch device a trial trained on (cpu | cuda | cuda:0 ...); trials.node: the Ray node / host.
-- Rows recorded before this migration keep NULL in the new columns.

ALTER TABLE sweeps ADD COLUMN message VARCHAR;
ALTER TABLE trials ADD COLUMN device VARCHAR;
ALTER TABLE trials ADD COLUMN node VARCHAR;
