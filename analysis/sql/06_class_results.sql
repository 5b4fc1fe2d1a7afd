-- depends on: trial_results
-- class_results: per finished trial, split and class: precision, recall, F1, support and the confusion row
-- (predicted: how many examples of this class were predicted as each label id), next to the trial's identifying
-- columns. split is the eval split (validation, validation_matched, ...) or 'test'; class is the class name.
with

trials as (
    select sweep, trial_id, stage, task, label, arch, embedding, emb_dim, seed from trial_results
),

classes as (
    select * from main.class_metrics
),

joined as (
    select
        t.sweep, t.trial_id, t.stage, t.task, t.label, t.arch, t.embedding, t.emb_dim, t.seed,
        c.split, c.label_id, c.label as class, c.precision, c.recall, c.f1, c.support, c.predicted
    from trials t
    join classes c using (sweep, trial_id)
)

select * from joined
