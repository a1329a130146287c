//! Property tests: random valid models and random inputs, scored by the extension's core and by
//! the simple reference implementation in `reference/`, must agree on everything the format
//! defines (score, coverage, band, segment, and every explain row).

mod reference;

use health_score_core::{Json, Model, Scratch, Summary};
use proptest::prelude::*;
use reference::cases::case;
use reference::{close, opt_close};

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn core_agrees_with_reference(case in case()) {
        let model = Model::parse(&Json::from(&case.model));
        prop_assert!(model.is_ok(), "generated model rejected: {:?}\n{}", model.err(), case.model);
        let model = model.unwrap();
        let input = Json::from(&case.input);
        let values = model.values_from_json(&input);
        let ours = model.evaluate(&values);
        let theirs = reference::evaluate(&case.model, &case.input);
        // the summary-only path (which skips the groups when every leaf counts) agrees too
        let summary = model.evaluate_into::<false>(&values, &mut Scratch::default());
        prop_assert_eq!(summary.is_ok(), ours.is_ok());
        // both paths give the same double: score(), assess() and snapshots agree to the bit
        if let (Ok(s), Ok(detailed)) = (&summary, &ours) {
            prop_assert_eq!(s.score.map(f64::to_bits), detailed.score.map(f64::to_bits));
            prop_assert_eq!(s.coverage.to_bits(), detailed.coverage.to_bits());
        }
        if let (Ok(s), Ok(r)) = (&summary, &theirs) {
            prop_assert!(opt_close(s.score, r.score), "summary score {:?} vs {:?}\n{}\n{}", s.score, r.score, case.model, case.input);
            prop_assert!(close(s.coverage, r.coverage), "summary coverage {} vs {}", s.coverage, r.coverage);
            prop_assert_eq!(model.segment_name(s.segment).map(str::to_string), r.segment.clone());
        }
        match (ours, theirs) {
            (Err(_), Err(_)) => {}
            (Ok(eval), Ok(r)) => {
                prop_assert!(opt_close(eval.score, r.score), "score {:?} vs {:?}\n{}\n{}", eval.score, r.score, case.model, case.input);
                prop_assert!(close(eval.coverage, r.coverage), "coverage {} vs {}", eval.coverage, r.coverage);
                prop_assert_eq!(model.segment_name(eval.segment).map(str::to_string), r.segment.clone());
                let band = model.band_of(eval.segment, eval.score).map(|(_, b)| b.name.clone());
                if band != r.band {
                    // either band is right for a score within 1e-9 relative of a band's min
                    let s = eval.score.unwrap_or(0.0);
                    let near = model.variant(eval.segment).bands.iter().flatten().any(|b| close(b.min, s));
                    prop_assert!(near, "band {:?} vs {:?} for score {:?}", band, r.band, eval.score);
                }
                // with hysteresis from a previous band: the spec's rule, either band accepted
                // within 1e-9 × max(1, |bound|) of a bound it depends on
                let previous = case.previous_band.as_deref();
                let ours = model.band_after(eval.segment, eval.score, previous).map(|(_, b)| b.name.clone());
                let (theirs, bounds) = reference::band_after(&case.model, r.segment.as_deref(), r.score, previous);
                if ours != theirs {
                    let s = eval.score.unwrap_or(0.0);
                    let near = bounds.iter().any(|b| (s - b).abs() <= 1e-9 * b.abs().max(1.0));
                    prop_assert!(near, "band after {:?}: {:?} vs {:?} for score {:?}\n{}", previous, ours, theirs, eval.score, case.model);
                }
                let rows = model.explain(&values, &eval);
                prop_assert_eq!(rows.len(), r.rows.len());
                for (a, b) in rows.iter().zip(r.rows.iter()) {
                    prop_assert_eq!(&a.component, &b.component);
                    prop_assert_eq!(&a.parent, &b.parent);
                    prop_assert_eq!(&a.input, &b.input);
                    prop_assert_eq!(a.status.as_str(), b.status, "status of {}\n{}\n{}", a.component, case.model, case.input);
                    prop_assert!(opt_close(a.normalized, b.normalized), "normalized of {}: {:?} vs {:?}", a.component, a.normalized, b.normalized);
                    prop_assert!(close(a.weight, b.weight), "weight of {}: {} vs {}", a.component, a.weight, b.weight);
                    prop_assert!(opt_close(a.contribution, b.contribution), "contribution of {}: {:?} vs {:?}", a.component, a.contribution, b.contribution);
                }
                // top-level contributions add up to the score
                if let Some(s) = eval.score {
                    let total: f64 = rows.iter().filter(|r| r.parent.is_none()).filter_map(|r| r.contribution).sum();
                    prop_assert!(close(total, s), "contributions {} vs score {}", total, s);
                }
            }
            (ours, theirs) => prop_assert!(false, "one side failed: ours {:?}, reference {:?}\n{}\n{}", ours.map(|e| e.score), theirs.map(|o| o.score), case.model, case.input),
        }
    }

    #[test]
    fn scores_stay_in_range(case in case()) {
        let model = Model::parse(&Json::from(&case.model)).unwrap();
        let input = Json::from(&case.input);
        let values = model.values_from_json(&input);
        if let Ok(eval) = model.evaluate(&values) {
            if let Some(s) = eval.score {
                prop_assert!(s >= 0.0 && s <= model.scale);
            }
            if let Ok(Summary { score: Some(s), .. }) = model.evaluate_into::<false>(&values, &mut Scratch::default()) {
                prop_assert!(s >= 0.0 && s <= model.scale);
            }
            prop_assert!(eval.coverage >= 0.0 && eval.coverage <= 1.0 + 1e-9);
        }
    }
}
