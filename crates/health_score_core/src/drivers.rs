//! Drivers of change: per component, the points it contributed to two stored snapshots, which
//! may have been scored by different versions of a model.

use super::Model;

/// One component's part in a score's change.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver<'m> {
    pub component: &'m str,
    /// As the later snapshot's version has it when the component is in both.
    pub parent: Option<&'m str>,
    pub points_before: f64,
    pub points_after: f64,
}

impl Driver<'_> {
    pub fn change(&self) -> f64 {
        self.points_after - self.points_before
    }
}

/// Every component of either version: the later version's in model order, then those only the
/// earlier version has, in its order. A component is matched across versions by its name and
/// its parent's name; one that moved to another group is two rows, one per side, with 0 points
/// on the side where it is not. So on each side a group's children add up to the group, and
/// the top-level rows add up to the score's change, across any change of the model.
pub fn drivers<'m>(
    before: &'m Model,
    after: &'m Model,
    points_before: impl Fn(&str) -> Option<f64>,
    points_after: impl Fn(&str) -> Option<f64>,
) -> Vec<Driver<'m>> {
    fn parent_of<'a>(model: &'a Model, name: &str) -> Option<Option<&'a str>> {
        let node = model.nodes.iter().find(|n| n.name == name)?;
        Some(node.parent.map(|p| model.nodes[p].name.as_str()))
    }
    let mut out = Vec::with_capacity(after.nodes.len());
    for node in &after.nodes {
        let parent = node.parent.map(|p| after.nodes[p].name.as_str());
        let same_place = parent_of(before, &node.name) == Some(parent);
        out.push(Driver {
            component: &node.name,
            parent,
            points_before: if same_place { points_before(&node.name).unwrap_or(0.0) } else { 0.0 },
            points_after: points_after(&node.name).unwrap_or(0.0),
        });
    }
    for node in &before.nodes {
        let parent = node.parent.map(|p| before.nodes[p].name.as_str());
        if parent_of(after, &node.name) == Some(parent) {
            continue;
        }
        out.push(Driver {
            component: &node.name,
            parent,
            points_before: points_before(&node.name).unwrap_or(0.0),
            points_after: 0.0,
        });
    }
    out
}

/// The drivers whose points changed, most negative change first (ties by name, byte-wise).
pub fn changed<'m>(mut all: Vec<Driver<'m>>) -> Vec<Driver<'m>> {
    all.retain(|d| d.change() != 0.0);
    all.sort_by(|a, b| {
        a.change().total_cmp(&b.change()).then_with(|| a.component.as_bytes().cmp(b.component.as_bytes()))
    });
    all
}
