{#- The churn model lives in the project, under version control. -#}
{% macro churn_model() -%}
{
  "description": "Churn risk of a B2B account",
  "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 50}, {"name": "green", "min": 75}],
  "band_hysteresis": 2,
  "components": [
    {"name": "usage", "weight": 2, "description": "Product usage", "components": [
      {"name": "logins", "weight": 1, "input": "logins_30d",
       "normalize": {"type": "linear", "min": 0, "max": 30}},
      {"name": "seats", "weight": 1, "input": "seat_utilization",
       "normalize": {"type": "linear", "min": 0, "max": 1}}]},
    {"name": "support", "weight": 1, "input": "open_tickets", "description": "Open support tickets",
     "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}},
    {"name": "nps", "weight": 1, "input": "nps",
     "normalize": {"type": "linear", "min": -100, "max": 100}}],
  "segments": {"input": "plan", "overrides": {"enterprise": {"weights": {"support": 3}}}}
}
{%- endmacro %}

{#- Registers the model as a new version only when it differs from the latest one, so that
    running the project does not add a version every time (set_model always adds one). -#}
{% macro register_health_model(name, config) -%}
SELECT health_score.set_model({{ dbt.string_literal(name) }}, m.config)
  FROM (SELECT {{ dbt.string_literal(config) }}::jsonb AS config) m
 WHERE m.config IS DISTINCT FROM (SELECT v.config FROM health_score.models v
                                   WHERE v.name = {{ dbt.string_literal(name) }} AND v.is_latest)
{%- endmacro %}
