-- depends on: pareto_points
-- skyline: the non-dominated points of pareto_points (trials and baselines), per sweep, task, score measure and
-- size measure, numbered from the smallest (skyline_rank 1) to the largest.
with

points as (
    select * from pareto_points where on_skyline
),

ranked as (
    select
        * exclude (on_skyline, on_stage_skyline),
        row_number() over (
            partition by sweep, task, score_measure, size_measure
            order by size_value, score_value desc, kind desc, name, trial_id
        ) as skyline_rank
    from points
)

select * from ranked
