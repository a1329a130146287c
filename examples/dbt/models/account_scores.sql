{{ config(materialized='table') }}

{#- Each account's score now, and the component that costs it the most points: the leaf with
    the largest scale × weight × (1 − normalized), which is where a CSM should look first. -#}
SELECT i.account_id,
       i.plan,
       s.score,
       s.band,
       s.coverage,
       s.segment,
       d.component AS top_driver,
       d.points_lost AS top_driver_points_lost
  FROM {{ ref('account_inputs') }} i
 CROSS JOIN LATERAL health_score.assess('churn', i) s
  LEFT JOIN LATERAL (
        SELECT e.component, 100 * e.weight * (1 - e.normalized) AS points_lost
          FROM health_score.explain('churn', i) e
         WHERE e.input IS NOT NULL AND e.normalized IS NOT NULL
         ORDER BY points_lost DESC, e.component
         LIMIT 1) d ON true
