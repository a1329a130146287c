{#- The model's inputs, one row per account, as the scoring wants them. Every build stores
    a snapshot of the whole population at the run date (re-running a date replaces it). -#}
{{ config(
    materialized='table',
    post_hook="SELECT health_score.snapshot('churn', '{{ this }}', 'account_id', '{{ var('run_date') }}'::timestamptz, keep_inputs => false)"
) }}

SELECT a.account_id,
       a.plan,
       a.arr,
       a.logins_30d,
       CASE WHEN a.seats_paid > 0 THEN a.seats_used::float8 / a.seats_paid END AS seat_utilization,
       a.open_tickets,
       a.nps
  FROM {{ source('app', 'accounts') }} a
