-- 009: trials a scheduler stopped early (the spec's `scheduler: pareto_halving`). Their status is 'stopped' (neither
-- finished nor error); stopped_at_rung: the epoch of the rung where the scheduler stopped them; stop_reason: why
-- ("dominated at the epoch-3 rung by d-..."). NULL for every other trial and for rows from before this migration.
-- Each rung result a trial reported is in epochs.metrics: rung, rung_seq (arrival order), rung_score, rung_size,
-- rung_group, rung_decision (continue | stop); the rung_results view lists them.

ALTER TABLE trials ADD COLUMN stopped_at_rung INTEGER;
ALTER TABLE trials ADD COLUMN stop_reason VARCHAR;
