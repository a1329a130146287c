{#- The stored snapshots, one row per account and run date, kept incrementally. The snapshot
    is written by account_inputs' post-hook, which dbt does not see as a dependency: the
    comment below tells it to build account_inputs first. -#}
-- depends_on: {{ ref('account_inputs') }}
{{ config(materialized='incremental', unique_key=['entity_key', 'scored_at']) }}

SELECT s.entity_key,
       s.scored_at,
       s.model_version,
       s.score,
       s.band,
       s.coverage
  FROM {{ source('health_score', 'scores') }} s
 WHERE s.model = 'churn'
{% if is_incremental() %}
   -- the latest run date already here is read again: a re-run of that date replaced it
   AND s.scored_at >= (SELECT coalesce(max(h.scored_at), '-infinity') FROM {{ this }} h)
{% endif %}
