//! Property tests of the drivers of change: two random models (whose components share names
//! in different trees, as versions of one model may) each explain a random input, and the
//! drivers between the two explanations must account for every point.

#[allow(dead_code)] // this test uses the reference's generator, not its evaluation
mod reference;

use std::collections::HashMap;

use health_score_core::drivers::{changed, drivers};
use health_score_core::{Json, Model};
use proptest::prelude::*;
use reference::cases::case;
use reference::close;

/// The model, its score and each component's points, when the input scores.
fn explained(case: &reference::cases::Case) -> Option<(Model, f64, HashMap<String, f64>)> {
    let model = Model::parse(&Json::from(&case.model)).ok()?;
    let input = Json::from(&case.input);
    let values = model.values_from_json(&input);
    let eval = model.evaluate(&values).ok()?;
    let score = eval.score?;
    let points = model
        .explain(&values, &eval)
        .into_iter()
        .filter_map(|row| row.contribution.map(|p| (row.component, p)))
        .collect();
    Some((model, score, points))
}

fn place(model: &Model) -> HashMap<&str, Option<&str>> {
    model.nodes.iter().map(|n| (n.name.as_str(), n.parent.map(|p| model.nodes[p].name.as_str()))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn drivers_account_for_every_point(before in case(), after in case()) {
        let (Some((old, old_score, old_points)), Some((new, new_score, new_points))) = (explained(&before), explained(&after)) else {
            return Ok(());
        };
        let all = drivers(&old, &new, |c| old_points.get(c).copied(), |c| new_points.get(c).copied());
        // the top-level rows add up to the score's change
        let top: f64 = all.iter().filter(|d| d.parent.is_none()).map(|d| d.change()).sum();
        prop_assert!(close(top, new_score - old_score), "{} vs {}", top, new_score - old_score);
        // every component of each version is one row, under its own parent, with its own points
        let (old_place, new_place) = (place(&old), place(&new));
        for (side, placed, points, pick) in [
            ("after", &new_place, &new_points, 0usize),
            ("before", &old_place, &old_points, 1usize),
        ] {
            for (name, parent) in placed.iter() {
                let rows: Vec<_> = all.iter().filter(|d| d.component == *name && d.parent == *parent).collect();
                prop_assert_eq!(rows.len(), 1, "{} {} under {:?}", side, name, parent);
                let got = if pick == 0 { rows[0].points_after } else { rows[0].points_before };
                prop_assert_eq!(got, points.get(*name).copied().unwrap_or(0.0));
            }
        }
        // and a row belongs to a version only where that version has it, in that place
        for d in &all {
            if new_place.get(d.component) != Some(&d.parent) {
                prop_assert_eq!(d.points_after, 0.0);
            }
            if old_place.get(d.component) != Some(&d.parent) {
                prop_assert_eq!(d.points_before, 0.0);
            }
        }
        // the changed ones: no zero change, most negative first
        let moved = changed(all.clone());
        prop_assert!(moved.iter().all(|d| d.change() != 0.0));
        prop_assert!(moved.windows(2).all(|w| w[0].change() <= w[1].change()));
        prop_assert_eq!(moved.len(), all.iter().filter(|d| d.change() != 0.0).count());
    }
}
