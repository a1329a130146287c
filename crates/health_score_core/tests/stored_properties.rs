//! Property tests of the stored record (`core::stored`): for random models (groups, segments,
//! imputation, invalid inputs read as missing, exclusions) and random inputs, the evaluation a
//! record gives back is the original one to the bit: segment, score, coverage, every
//! component's status and `n`, and every component's points and effective weight.

#[allow(dead_code)] // this test uses the reference's generator, not its evaluation
mod reference;

use health_score_core::stored::{decode, encode, FORMAT};
use health_score_core::{Evaluation, Json, Model};
use proptest::prelude::*;
use reference::cases::case;

fn bits(v: Option<f64>) -> Option<u64> {
    v.map(f64::to_bits)
}

fn same(a: &Evaluation, b: &Evaluation) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.segment, b.segment);
    prop_assert_eq!(bits(a.score), bits(b.score));
    prop_assert_eq!(a.coverage.to_bits(), b.coverage.to_bits());
    prop_assert_eq!(a.nodes.len(), b.nodes.len());
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        prop_assert_eq!(x.status, y.status);
        prop_assert_eq!(bits(x.normalized), bits(y.normalized));
    }
    Ok(())
}

#[test]
fn a_segment_past_the_first_byte_round_trips() {
    // 300 overrides: the segment number takes two bytes
    let overrides: serde_json::Map<String, serde_json::Value> =
        (0..300).map(|i| (format!("s{i}"), serde_json::json!({"weights": {"b": 1 + i % 3}}))).collect();
    let model = serde_json::json!({
        "components": [{"name": "a", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}},
                       {"name": "b", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}],
        "segments": {"input": "plan", "overrides": overrides}
    });
    let model = Model::parse(&Json::from(&model)).expect("valid model");
    for plan in ["s0", "s126", "s127", "s299", "none"] {
        let input = Json::from(&serde_json::json!({"a": 3, "b": 9, "plan": plan}));
        let eval = model.evaluate(&model.values_from_json(&input)).expect("scores");
        let record = encode(&model, eval.segment, &eval.nodes);
        let back = decode(&model, &record).expect("decodes");
        assert_eq!(back.segment, eval.segment, "{plan}");
        assert_eq!(back.score.map(f64::to_bits), eval.score.map(f64::to_bits), "{plan}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn a_record_gives_back_the_evaluation_to_the_bit(c in case()) {
        let Ok(model) = Model::parse(&Json::from(&c.model)) else { return Ok(()) };
        let input = Json::from(&c.input);
        let values = model.values_from_json(&input);
        let Ok(eval) = model.evaluate(&values) else { return Ok(()) };
        let record = encode(&model, eval.segment, &eval.nodes);
        prop_assert_eq!(record[0], FORMAT);
        let back = decode(&model, &record).expect("a record of this model decodes");
        same(&eval, &back)?;
        let (weights, points) = model.points(eval.segment, &eval.nodes);
        let (weights_back, points_back) = model.points(back.segment, &back.nodes);
        prop_assert_eq!(weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>(),
                        weights_back.iter().map(|w| w.to_bits()).collect::<Vec<_>>());
        prop_assert_eq!(points.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
                        points_back.iter().map(|p| p.to_bits()).collect::<Vec<_>>());
        // the summary path (score(), band()) gives the score the record keeps
        let summary = model.evaluate_into::<false>(&values, &mut Default::default()).expect("scores");
        prop_assert_eq!(bits(summary.score), bits(back.score));
        prop_assert_eq!(summary.coverage.to_bits(), back.coverage.to_bits());
        // nine bytes a leaf at the most, and the header: a format byte and the segment (one
        // byte for the first 127 overrides)
        let leaves = model.nodes.iter().filter(|n| n.is_leaf()).count();
        let header = if model.overrides.len() < 127 { 2 } else { 4 };
        prop_assert!(record.len() <= header + 9 * leaves);
    }

    #[test]
    fn a_cut_padded_or_foreign_record_is_refused_never_misread(c in case(), cut in any::<prop::sample::Index>(),
                                                               noise in prop::collection::vec(any::<u8>(), 0..40)) {
        let Ok(model) = Model::parse(&Json::from(&c.model)) else { return Ok(()) };
        let input = Json::from(&c.input);
        let Ok(eval) = model.evaluate(&model.values_from_json(&input)) else { return Ok(()) };
        let record = encode(&model, eval.segment, &eval.nodes);
        let cut_at = cut.index(record.len());
        prop_assert!(decode(&model, &record[..cut_at]).is_none());
        let mut padded = record.clone();
        padded.push(0);
        prop_assert!(decode(&model, &padded).is_none());
        let mut other_format = record.clone();
        other_format[0] = FORMAT + 1;
        prop_assert!(decode(&model, &other_format).is_none());
        // arbitrary bytes decode to nothing or to some evaluation, without a panic
        let _ = decode(&model, &noise);
    }
}
