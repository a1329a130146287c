//! Parent accounts: the health of a parent from its children's scores, weighted (by ARR, say).
//!
//! The parent's score is the weight-averaged score of its counted children (a NULL score, or a
//! NULL, non-positive or non-finite weight, leaves a child out, and is counted as left out);
//! its band is that score's band under the model's bands; per component, the weight-averaged
//! points of the children add up to the parent's score as each child's add up to its own.
//! The state is order-insensitive (ties for the lowest child go to the smallest key), so that
//! partial states of a parallel aggregate combine to the same result.

use std::collections::BTreeMap;

use crate::bytes::Reader;
use crate::error::Error;
use crate::json::Json;
use crate::model::Band;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParentState {
    /// The model's own bands (its base variant's), taken from the first row.
    bands: Option<Vec<Band>>,
    counted: u64,
    left_out: u64,
    weight: f64,
    weighted_score: f64,
    lowest: Option<(f64, String)>,
    per_band: BTreeMap<String, u64>,
    /// Per component, the sum of weight × points over the counted children that gave them.
    weighted_points: BTreeMap<String, f64>,
    with_components: u64,
}

/// One child as the aggregate reads it.
pub struct Child<'a> {
    pub key: &'a str,
    pub score: Option<f64>,
    pub weight: Option<f64>,
    /// The child's own band (as a snapshot stored it); None: the band of its score.
    pub band: Option<&'a str>,
    /// Its components as `health_score.scores.components` holds them (`{"name": {"points":
    /// p, ...}}`) or as plain numbers (`{"name": p}`).
    pub components: Option<&'a Json>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParentHealth {
    pub score: Option<f64>,
    pub band: Option<String>,
    pub children: u64,
    pub left_out: u64,
    pub total_weight: f64,
    pub lowest_child: Option<String>,
    pub lowest_score: Option<f64>,
    /// Children per band: the model's bands in rank order (0 children included), then any
    /// other band a child came with, by name.
    pub per_band: Vec<(String, u64)>,
    /// Per component, the weight-averaged points; None unless every counted child gave them.
    pub points: Option<Vec<(String, f64)>>,
}

fn bad(message: String, hint: &str) -> Error {
    Error::InvalidArgument { message, hint: Some(hint.to_string()) }
}

impl ParentState {
    /// Whether the model's bands are known yet (the first row gives them).
    pub fn has_model(&self) -> bool {
        self.bands.is_some()
    }

    pub fn set_bands(&mut self, bands: Vec<Band>) {
        self.bands = Some(bands);
    }

    pub fn add(&mut self, child: &Child<'_>) -> Result<(), Error> {
        let (Some(score), Some(weight)) = (child.score, child.weight) else {
            self.left_out += 1;
            return Ok(());
        };
        if !score.is_finite() {
            return Err(bad(
                format!("parent_health: child \"{}\" has the score {score}", excerpt(child.key)),
                "a score must be a finite number (NULL leaves the child out)",
            ));
        }
        if !(weight.is_finite() && weight > 0.0) {
            self.left_out += 1;
            return Ok(());
        }
        let points = match child.components {
            Some(json) => Some(points_of(child.key, json)?),
            None => None,
        };
        self.counted += 1;
        self.weight += weight;
        self.weighted_score += weight * score;
        if self.lowest.as_ref().is_none_or(|(s, k)| (score, child.key) < (*s, k.as_str())) {
            self.lowest = Some((score, child.key.to_string()));
        }
        let band = match child.band {
            Some(b) => Some(b.to_string()),
            None => self.band_of(score),
        };
        if let Some(b) = band {
            *self.per_band.entry(b).or_default() += 1;
        }
        if let Some(points) = points {
            self.with_components += 1;
            for (name, p) in points {
                *self.weighted_points.entry(name.to_string()).or_default() += weight * p;
            }
        }
        Ok(())
    }

    pub fn combine(&mut self, other: &ParentState) -> Result<(), Error> {
        if self.bands.is_none() {
            self.bands.clone_from(&other.bands);
        }
        self.counted += other.counted;
        self.left_out += other.left_out;
        self.weight += other.weight;
        self.weighted_score += other.weighted_score;
        if let Some((s, k)) = &other.lowest {
            if self.lowest.as_ref().is_none_or(|(s0, k0)| (*s, k.as_str()) < (*s0, k0.as_str())) {
                self.lowest = Some((*s, k.clone()));
            }
        }
        for (band, n) in &other.per_band {
            *self.per_band.entry(band.clone()).or_default() += n;
        }
        for (name, p) in &other.weighted_points {
            *self.weighted_points.entry(name.clone()).or_default() += p;
        }
        self.with_components += other.with_components;
        Ok(())
    }

    fn band_of(&self, score: f64) -> Option<String> {
        crate::score::band_in(self.bands.as_ref()?, score).map(|(_, b)| b.name.clone())
    }

    pub fn finish(&self) -> ParentHealth {
        let score = (self.counted > 0).then(|| self.weighted_score / self.weight);
        let mut per_band: Vec<(String, u64)> = Vec::new();
        for band in self.bands.iter().flatten() {
            per_band.push((band.name.clone(), self.per_band.get(&band.name).copied().unwrap_or(0)));
        }
        for (name, n) in &self.per_band {
            if !per_band.iter().any(|(b, _)| b == name) {
                per_band.push((name.clone(), *n));
            }
        }
        let points = (self.counted > 0 && self.with_components == self.counted)
            .then(|| self.weighted_points.iter().map(|(name, p)| (name.clone(), p / self.weight)).collect());
        ParentHealth {
            score,
            band: score.and_then(|s| self.band_of(s)),
            children: self.counted,
            left_out: self.left_out,
            total_weight: self.weight,
            lowest_child: self.lowest.as_ref().map(|(_, k)| k.clone()),
            lowest_score: self.lowest.as_ref().map(|(s, _)| *s),
            per_band,
            points,
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        match &self.bands {
            None => out.push(0),
            Some(bands) => {
                out.push(1);
                out.extend_from_slice(&(bands.len() as u32).to_le_bytes());
                for b in bands {
                    text(&mut out, &b.name);
                    out.extend_from_slice(&b.min.to_le_bytes());
                }
            }
        }
        for v in [self.counted, self.left_out, self.with_components] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.weight.to_le_bytes());
        out.extend_from_slice(&self.weighted_score.to_le_bytes());
        match &self.lowest {
            None => out.push(0),
            Some((s, k)) => {
                out.push(1);
                out.extend_from_slice(&s.to_le_bytes());
                text(&mut out, k);
            }
        }
        out.extend_from_slice(&(self.per_band.len() as u32).to_le_bytes());
        for (name, n) in &self.per_band {
            text(&mut out, name);
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&(self.weighted_points.len() as u32).to_le_bytes());
        for (name, p) in &self.weighted_points {
            text(&mut out, name);
            out.extend_from_slice(&p.to_le_bytes());
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ParentState> {
        let mut r = Reader::new(bytes);
        let text = |r: &mut Reader<'_>| r.bytes().and_then(|b| std::str::from_utf8(b).ok()).map(str::to_string);
        let mut state = ParentState::default();
        if r.u8()? == 1 {
            let n = r.u32()? as usize;
            let mut bands = Vec::new();
            for _ in 0..n {
                bands.push(Band { name: text(&mut r)?, min: r.f64()? });
            }
            state.bands = Some(bands);
        }
        state.counted = r.u64()?;
        state.left_out = r.u64()?;
        state.with_components = r.u64()?;
        state.weight = r.f64()?;
        state.weighted_score = r.f64()?;
        if r.u8()? == 1 {
            let s = r.f64()?;
            state.lowest = Some((s, text(&mut r)?));
        }
        for _ in 0..r.u32()? {
            let name = text(&mut r)?;
            state.per_band.insert(name, r.u64()?);
        }
        for _ in 0..r.u32()? {
            let name = text(&mut r)?;
            state.weighted_points.insert(name, r.f64()?);
        }
        r.rest().is_empty().then_some(state)
    }
}

/// A child's points per component, from `{"name": {"points": p, ...}}` or `{"name": p}`.
fn points_of<'j>(key: &str, json: &'j Json) -> Result<Vec<(&'j str, f64)>, Error> {
    const HINT: &str =
        "pass the components as health_score.scores holds them, or an object of component name to points";
    let Json::Object(members) = json else {
        return Err(bad(
            format!(
                "parent_health: the components of child \"{}\" must be an object, not {}",
                excerpt(key),
                json.kind()
            ),
            HINT,
        ));
    };
    members
        .iter()
        .map(|(name, value)| {
            let points = match value {
                Json::Number(p) => Some(*p),
                Json::Object(_) => match value.get("points") {
                    Some(Json::Number(p)) => Some(*p),
                    // a child without a score has no points; it is left out before this
                    _ => None,
                },
                _ => None,
            };
            match points {
                Some(p) if p.is_finite() => Ok((name.as_str(), p)),
                _ => Err(bad(
                    format!(
                        "parent_health: child \"{}\", component \"{}\": the points must be a finite number",
                        excerpt(key),
                        excerpt(name)
                    ),
                    HINT,
                )),
            }
        })
        .collect()
}

fn excerpt(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bands() -> Vec<Band> {
        vec![
            Band { name: "red".into(), min: 0.0 },
            Band { name: "yellow".into(), min: 40.0 },
            Band { name: "green".into(), min: 70.0 },
        ]
    }

    fn child<'a>(key: &'a str, score: Option<f64>, weight: Option<f64>, components: Option<&'a Json>) -> Child<'a> {
        Child { key, score, weight, band: None, components }
    }

    #[test]
    fn three_subsidiaries_average_by_weight_and_explain_it() {
        let a = Json::from(&serde_json::json!({"usage": {"points": 50, "n": 0.8}, "support": {"points": 40, "n": 1}}));
        let b = Json::from(&serde_json::json!({"usage": 20, "support": 10}));
        let c = Json::from(&serde_json::json!({"usage": 5, "support": 25}));
        let mut s = ParentState::default();
        s.set_bands(bands());
        s.add(&child("a", Some(90.0), Some(100.0), Some(&a))).unwrap();
        s.add(&child("b", Some(30.0), Some(300.0), Some(&b))).unwrap();
        s.add(&child("c", Some(30.0), Some(100.0), Some(&c))).unwrap();
        s.add(&child("d", None, Some(5.0), None)).unwrap();
        s.add(&child("e", Some(80.0), Some(0.0), None)).unwrap();
        s.add(&child("f", Some(80.0), None, None)).unwrap();
        let h = s.finish();
        // (90 × 100 + 30 × 300 + 30 × 100) / 500 = 42
        assert_eq!(h.score, Some(42.0));
        assert_eq!(h.band.as_deref(), Some("yellow"));
        assert_eq!((h.children, h.left_out, h.total_weight), (3, 3, 500.0));
        // ties on the lowest score go to the smallest key
        assert_eq!((h.lowest_child.as_deref(), h.lowest_score), (Some("b"), Some(30.0)));
        assert_eq!(h.per_band, vec![("red".into(), 2), ("yellow".into(), 0), ("green".into(), 1)]);
        // usage (50 × 100 + 20 × 300 + 5 × 100) / 500 = 23, support (40 × 100 + 10 × 300 + 25 × 100) / 500 = 19
        assert_eq!(h.points, Some(vec![("support".into(), 19.0), ("usage".into(), 23.0)]));
    }

    #[test]
    fn partial_states_combine_to_the_same_result_through_bytes() {
        let mut whole = ParentState::default();
        let mut left = ParentState::default();
        let mut right = ParentState::default();
        for s in [&mut whole, &mut left, &mut right] {
            s.set_bands(bands());
        }
        let comps: Vec<Json> =
            (0..10).map(|i| Json::from(&serde_json::json!({"x": i as f64, "y": 2.0 * i as f64}))).collect();
        for (i, components) in comps.iter().enumerate() {
            let key = format!("k{i}");
            let c = Child {
                key: &key,
                score: Some(3.0 * i as f64),
                weight: Some(1.0 + i as f64),
                band: (i == 3).then_some("own"),
                components: Some(components),
            };
            whole.add(&c).unwrap();
            if i % 2 == 0 { &mut left } else { &mut right }.add(&c).unwrap();
        }
        let right = ParentState::from_bytes(&right.to_bytes().unwrap()).unwrap();
        let mut combined = ParentState::from_bytes(&left.to_bytes().unwrap()).unwrap();
        combined.combine(&right).unwrap();
        let (a, b) = (whole.finish(), combined.finish());
        assert!((a.score.unwrap() - b.score.unwrap()).abs() < 1e-12);
        assert_eq!((a.lowest_child, a.per_band), (b.lowest_child, b.per_band));
        assert_eq!(ParentState::from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn a_child_without_components_leaves_the_parent_without_them() {
        let comps = Json::from(&serde_json::json!({"x": 10}));
        let mut s = ParentState::default();
        s.add(&child("a", Some(10.0), Some(1.0), Some(&comps))).unwrap();
        s.add(&child("b", Some(20.0), Some(1.0), None)).unwrap();
        let h = s.finish();
        assert_eq!((h.score, h.points, h.band), (Some(15.0), None, None));
    }

    #[test]
    fn bad_scores_and_components_are_errors_naming_the_child() {
        let mut s = ParentState::default();
        let e = s.add(&child("acme", Some(f64::NAN), Some(1.0), None)).unwrap_err();
        assert!(e.message().contains("child \"acme\""), "{}", e.message());
        let bad = Json::from(&serde_json::json!({"x": "ten"}));
        let e = s.add(&child("acme", Some(1.0), Some(1.0), Some(&bad))).unwrap_err();
        assert!(e.message().contains("component \"x\""), "{}", e.message());
        assert_eq!(e.sqlstate(), "22023");
    }
}
