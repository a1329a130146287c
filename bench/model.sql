-- The benchmark's model 'bench': eight components in nested groups, seven normalizer types.
-- Included by setup.sql and storage.sql.
SELECT health_score.set_model('bench', '{
  "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 50}, {"name": "green", "min": 75}],
  "components": [
    {"name": "usage", "weight": 3, "components": [
      {"name": "logins", "weight": 2, "normalize": {"type": "log", "min": 0, "max": 500}},
      {"name": "active", "weight": 1, "input": "active_share", "normalize": {"type": "curve", "points": [[0, 0], [0.5, 0.7], [1, 1]]}},
      {"name": "adoption", "weight": 1, "normalize": {"type": "linear", "min": 0.1, "max": 0.9}}
    ]},
    {"name": "engagement", "weight": 2, "components": [
      {"name": "recency", "weight": 1, "input": "days_since_login", "normalize": {"type": "decay", "half_life": 14}},
      {"name": "nps", "weight": 1, "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.6, "detractor": 0}}}
    ]},
    {"name": "support", "weight": 2, "components": [
      {"name": "tickets", "weight": 1, "input": "open_tickets", "normalize": {"type": "steps", "steps": [{"at": 0, "score": 1}, {"at": 3, "score": 0.6}, {"at": 8, "score": 0.2}]}},
      {"name": "csat", "weight": 1, "normalize": {"type": "logistic", "midpoint": 3, "steepness": 1.5}}
    ]},
    {"name": "billing", "weight": 1, "input": "overdue_days", "normalize": {"type": "linear", "min": 0, "max": 90, "invert": true}}
  ]
}');
