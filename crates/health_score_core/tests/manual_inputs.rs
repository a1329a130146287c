//! CSM inputs (docs/acting.md): checking a manual value against every leaf that reads its
//! input, reading the JSON the SQL side gathers, and applying the values over the source's.

use health_score_core::manual::Manual;
use health_score_core::{Error, Json, Model};
use serde_json::json;

fn model() -> Model {
    Model::parse(&Json::from(&json!({
        "components": [
            {"name": "usage", "input": "logins", "weight": 2, "normalize": {"type": "linear", "min": 0, "max": 50}},
            {"name": "voice", "weight": 1, "components": [
                {"name": "sentiment", "input": "csm_sentiment", "weight": 1,
                 "normalize": {"type": "map", "values": {"happy": 1, "neutral": 0.5, "at_risk": 0}}}
            ]}
        ],
        "bands": [{"name": "red", "min": 0}, {"name": "green", "min": 60}],
        "segments": {"input": "plan", "overrides": {
            "enterprise": {
                "normalize": {"usage": {"type": "linear", "min": 0, "max": 100}},
                "bands": [{"name": "critical", "min": 0}, {"name": "fine", "min": 50}]
            },
            "smb": {"normalize": {"sentiment": {"type": "map", "values": {"happy": 1}, "default": 0.2}}}
        }}
    })))
    .expect("valid model")
}

fn message(e: Error) -> (String, &'static str) {
    (e.message(), e.sqlstate())
}

#[test]
fn a_value_every_leaf_can_use_is_accepted() {
    let m = model();
    for (input, value) in [("logins", "12"), ("logins", " 3.5e1 "), ("csm_sentiment", "at_risk"), ("plan", "anything")]
    {
        assert_eq!(m.check_manual_value(input, value), Ok(()), "{input} = {value}");
    }
}

#[test]
fn a_value_some_leaf_rejects_is_refused_with_the_component_and_its_path() {
    let m = model();
    let (msg, state) = message(m.check_manual_value("logins", "lots").unwrap_err());
    assert_eq!(state, "22023");
    assert!(msg.contains("component \"usage\" at components[0]"), "{msg}");
    assert!(msg.contains("not a number"), "{msg}");
    // "meh" is no category of the base model's map (the smb override has a default: it is
    // the base that refuses it)
    let (msg, _) = message(m.check_manual_value("csm_sentiment", "meh").unwrap_err());
    assert!(msg.contains("component \"sentiment\" at components[1].components[0]"), "{msg}");
    assert!(!msg.contains("under segment override"), "{msg}");
}

#[test]
fn an_override_that_rejects_a_value_the_base_accepts_is_named() {
    let m = Model::parse(&Json::from(&json!({
        "components": [{"name": "tier", "input": "tier", "weight": 1,
                        "normalize": {"type": "map", "values": {"gold": 1}, "default": 0}}],
        "segments": {"input": "plan", "overrides": {
            "trial": {"normalize": {"tier": {"type": "map", "values": {"gold": 1}}}}
        }}
    })))
    .unwrap();
    let (msg, state) = message(m.check_manual_value("tier", "silver").unwrap_err());
    assert_eq!(state, "22023");
    assert!(msg.contains("under segment override \"trial\""), "{msg}");
    assert!(msg.contains("components[0]"), "{msg}");
}

#[test]
fn an_input_the_model_does_not_read_is_refused_with_its_inputs_listed() {
    let e = model().check_manual_value("nps", "9").unwrap_err();
    assert_eq!(e.sqlstate(), "22023");
    assert!(e.message().contains("reads no input \"nps\""));
    assert_eq!(e.hint().as_deref(), Some("its inputs: logins, csm_sentiment, plan"));
}

#[test]
fn manual_values_replace_and_fill_the_sources_and_change_the_score() {
    let m = model();
    let manual = Manual::from_json(&Json::from(&json!({
        "inputs": {"csm_sentiment": {"value": "at_risk", "set_by": "alice"}, "not_read": {"value": "1"}},
        "band": {"band": "green", "reason": "renewal signed"}
    })));
    assert_eq!(manual.inputs.len(), 2);
    assert_eq!(manual.band.as_ref().map(|b| b.band.as_str()), Some("green"));
    let source = Json::from(&json!({"logins": 50, "csm_sentiment": "happy"}));
    let before = m.evaluate(&m.values_from_json(&source)).unwrap().score.unwrap();
    let mut values = m.values_from_json(&source);
    let applied = manual.apply(&m, &mut values);
    assert_eq!(applied, vec![None, Some(0), None]);
    let after = m.evaluate(&values).unwrap().score.unwrap();
    // usage 1 with weight 2, sentiment 1 → 0 with weight 1: 100 → 200/3
    assert!((before - 100.0).abs() < 1e-9 && (after - 200.0 / 3.0).abs() < 1e-9, "{before} {after}");

    // a source without the input: the manual value fills it
    let only_logins = Json::from(&json!({"logins": 0}));
    let mut values = m.values_from_json(&only_logins);
    manual.apply(&m, &mut values);
    assert_eq!(m.evaluate(&values).unwrap().coverage, 1.0);
}

#[test]
fn bands_are_found_by_name_in_the_list_applied() {
    let m = model();
    let enterprise = m.segment_index("enterprise");
    assert_eq!(m.band_named(None, "green").map(|(r, _)| r), Some(1));
    assert_eq!(m.band_named(enterprise, "green"), None);
    assert_eq!(m.band_named(enterprise, "critical").map(|(r, _)| r), Some(0));
    assert_eq!(m.band_names(), vec!["red", "green", "critical", "fine"]);
}

#[test]
fn malformed_entries_are_left_out() {
    let manual = Manual::from_json(&Json::from(&json!({"inputs": {"a": {"value": 3}, "b": "x"}, "band": {"by": "x"}})));
    assert!(manual.is_empty());
}
