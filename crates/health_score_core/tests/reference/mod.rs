//! A second, deliberately simple implementation of docs/model-format.md, for the property
//! tests: it walks the JSON model and input directly, recomputing everything each time,
//! and shares no code with the extension.

use serde_json::Value;

pub mod cases;

/// Equal within the spec's tolerance: 1e-9 relative (absolute below 1).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

pub fn opt_close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => close(x, y),
        _ => false,
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub component: String,
    pub parent: Option<String>,
    pub input: Option<String>,
    pub normalized: Option<f64>,
    pub weight: f64,
    pub contribution: Option<f64>,
    pub status: &'static str,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub score: Option<f64>,
    pub coverage: f64,
    pub band: Option<String>,
    pub segment: Option<String>,
    pub rows: Vec<Row>,
}

struct Node {
    name: String,
    parent: Option<String>,
    input: Option<String>,
    weight: f64,
    n: Option<f64>,
    status: &'static str,
    children: Vec<Node>,
    eff: f64,
    contribution: f64,
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(s) => {
            let t = s.trim_matches(' ');
            let b = t.as_bytes();
            // [+-]?(digits[.digits?] | .digits)([eE][+-]?digits)?
            let mut i = 0;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            let a = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let int_digits = i - a;
            let mut frac_digits = 0;
            if i < b.len() && b[i] == b'.' {
                i += 1;
                let f = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                frac_digits = i - f;
            }
            if int_digits + frac_digits == 0 {
                return None;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                let e = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i == e {
                    return None;
                }
            }
            if i != b.len() {
                return None;
            }
            t.parse::<f64>().ok().filter(|x| x.is_finite())
        }
        _ => None,
    }
}

fn category_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_f64().map(|x| format!("{x}")),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// n for a present value, None when the value is invalid for this normalizer.
fn normalize(norm: &Value, x: &Value) -> Option<f64> {
    let t = norm["type"].as_str().unwrap_or("");
    if t == "map" {
        let c = category_of(x)?;
        return match norm["values"].get(&c) {
            Some(v) => v.as_f64(),
            None => norm.get("default").and_then(Value::as_f64),
        };
    }
    let x = number_of(x)?;
    // the spec's min(max(v, 0), 1), written as the spec writes it
    #[allow(clippy::manual_clamp)]
    let clamp = |v: f64| v.max(0.0).min(1.0);
    let invert = norm.get("invert").and_then(Value::as_bool).unwrap_or(false);
    let flip = |v: f64| if invert { 1.0 - v } else { v };
    Some(match t {
        "linear" => flip(clamp((x - num(norm, "min")) / (num(norm, "max") - num(norm, "min")))),
        "log" => {
            let (lo, hi) = (num(norm, "min"), num(norm, "max"));
            flip(if x <= lo {
                0.0
            } else {
                clamp(((1.0 + x).ln() - (1.0 + lo).ln()) / ((1.0 + hi).ln() - (1.0 + lo).ln()))
            })
        }
        "steps" => {
            let mut n = norm.get("below").and_then(Value::as_f64).unwrap_or(0.0);
            for s in norm["steps"].as_array().unwrap() {
                if num(s, "at") <= x {
                    n = num(s, "score");
                }
            }
            n
        }
        "curve" => {
            let pts: Vec<(f64, f64)> = norm["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            if x <= pts[0].0 {
                pts[0].1
            } else if x >= pts[pts.len() - 1].0 {
                pts[pts.len() - 1].1
            } else {
                let mut y = 0.0;
                for w in pts.windows(2) {
                    if w[0].0 <= x && x < w[1].0 {
                        y = w[0].1 + (w[1].1 - w[0].1) * (x - w[0].0) / (w[1].0 - w[0].0);
                    }
                }
                y
            }
        }
        "logistic" => 1.0 / (1.0 + (-num(norm, "steepness") * (x - num(norm, "midpoint"))).exp()),
        "decay" => 0.5f64.powf(x.max(0.0) / num(norm, "half_life")),
        _ => panic!("unknown normalizer {t}"),
    })
}

fn rule_imputed(rule: &Value) -> Option<f64> {
    match rule {
        Value::String(s) if s == "zero" => Some(0.0),
        Value::Object(o) => o.get("impute").and_then(Value::as_f64),
        _ => None,
    }
}

struct Ctx<'a> {
    input: &'a Value,
    ov: Option<&'a Value>,
    coverage: f64,
}

impl Ctx<'_> {
    fn weight(&self, c: &Value) -> f64 {
        let name = c["name"].as_str().unwrap();
        self.ov
            .and_then(|o| o.get("weights"))
            .and_then(|w| w.get(name))
            .and_then(Value::as_f64)
            .unwrap_or_else(|| c["weight"].as_f64().unwrap())
    }
    fn normalizer<'b>(&'b self, c: &'b Value) -> &'b Value {
        let name = c["name"].as_str().unwrap();
        self.ov.and_then(|o| o.get("normalize")).and_then(|n| n.get(name)).unwrap_or(&c["normalize"])
    }
}

fn excluded(c: &Value, parent: Option<&str>) -> Node {
    Node {
        name: c["name"].as_str().unwrap().to_string(),
        parent: parent.map(str::to_string),
        input: if c.get("components").is_some() {
            None
        } else {
            Some(c.get("input").and_then(Value::as_str).unwrap_or(c["name"].as_str().unwrap()).to_string())
        },
        weight: 0.0,
        n: None,
        status: "excluded",
        children: c
            .get("components")
            .map(|cs| cs.as_array().unwrap().iter().map(|k| excluded(k, c["name"].as_str())).collect())
            .unwrap_or_default(),
        eff: 0.0,
        contribution: 0.0,
    }
}

fn eval_list(
    ctx: &mut Ctx,
    comps: &Value,
    parent: Option<&str>,
    share: f64,
    missing: &Value,
    on_invalid: &str,
) -> Result<Vec<Node>, String> {
    let comps = comps.as_array().unwrap();
    let total: f64 = comps.iter().map(|c| ctx.weight(c)).filter(|w| *w > 0.0).sum();
    let mut out = Vec::new();
    for c in comps {
        let w = ctx.weight(c);
        if w == 0.0 {
            out.push(excluded(c, parent));
            continue;
        }
        let my_share = share * w / total;
        let my_missing = c.get("missing").unwrap_or(missing);
        let my_invalid = c.get("on_invalid").and_then(Value::as_str).unwrap_or(on_invalid);
        let name = c["name"].as_str().unwrap().to_string();
        let mut node = Node {
            name: name.clone(),
            parent: parent.map(str::to_string),
            input: None,
            weight: w,
            n: None,
            status: "missing",
            children: Vec::new(),
            eff: 0.0,
            contribution: 0.0,
        };
        let mut invalid = false;
        if let Some(children) = c.get("components") {
            node.children = eval_list(ctx, children, Some(&name), my_share, my_missing, my_invalid)?;
            let cw: f64 = node.children.iter().filter(|k| k.n.is_some()).map(|k| k.weight).sum();
            if cw > 0.0 {
                let s: f64 = node.children.iter().filter(|k| k.n.is_some()).map(|k| k.weight * k.n.unwrap()).sum();
                node.n = Some(s / cw);
                node.status = "ok";
            }
        } else {
            let key = c.get("input").and_then(Value::as_str).unwrap_or(&name).to_string();
            node.input = Some(key.clone());
            let v = ctx.input.get(&key).unwrap_or(&Value::Null);
            if !v.is_null() {
                match normalize(ctx.normalizer(c), v) {
                    Some(n) => {
                        node.n = Some(n);
                        node.status = "ok";
                        ctx.coverage += my_share;
                    }
                    None if my_invalid == "missing" => invalid = true,
                    None => return Err(format!("invalid value for {name}")),
                }
            }
        }
        if node.n.is_none() {
            node.n = rule_imputed(my_missing);
            node.status = if invalid {
                "invalid"
            } else if node.n.is_some() {
                "imputed"
            } else {
                "missing"
            };
        }
        out.push(node);
    }
    Ok(out)
}

fn assign(nodes: &mut [Node], parent_eff: f64, scale: f64) {
    let total: f64 = nodes.iter().filter(|n| n.n.is_some()).map(|n| n.weight).sum();
    for node in nodes.iter_mut() {
        if let Some(n) = node.n {
            node.eff = parent_eff * node.weight / total;
            if node.status == "ok" && !node.children.is_empty() {
                assign(&mut node.children, node.eff, scale);
                node.contribution = node.children.iter().map(|k| k.contribution).sum();
            } else {
                node.contribution = scale * node.eff * n;
            }
        }
    }
}

fn flatten(nodes: &[Node], scored: bool, out: &mut Vec<Row>) {
    for n in nodes {
        out.push(Row {
            component: n.name.clone(),
            parent: n.parent.clone(),
            input: n.input.clone(),
            normalized: n.n,
            weight: n.eff,
            contribution: scored.then_some(n.contribution),
            status: n.status,
        });
        flatten(&n.children, scored, out);
    }
}

pub fn evaluate(model: &Value, input: &Value) -> Result<Outcome, String> {
    let scale = model.get("scale").and_then(Value::as_f64).unwrap_or(100.0);
    let mut segment = None;
    let mut ov = None;
    if let Some(seg) = model.get("segments") {
        let key = seg["input"].as_str().unwrap();
        if let Some(cat) = input.get(key).and_then(category_of) {
            if let Some(o) = seg["overrides"].get(&cat) {
                segment = Some(cat);
                ov = Some(o);
            }
        }
    }
    let mut ctx = Ctx { input, ov, coverage: 0.0 };
    let missing = model.get("missing").cloned().unwrap_or(Value::String("reweight".into()));
    let on_invalid = model.get("on_invalid").and_then(Value::as_str).unwrap_or("error");
    let mut nodes = eval_list(&mut ctx, &model["components"], None, 1.0, &missing, on_invalid)?;
    let cw: f64 = nodes.iter().filter(|k| k.n.is_some()).map(|k| k.weight).sum();
    let mut score = if cw > 0.0 {
        Some(scale * nodes.iter().filter(|k| k.n.is_some()).map(|k| k.weight * k.n.unwrap()).sum::<f64>() / cw)
    } else {
        None
    };
    let min_cov = model.get("min_coverage").and_then(Value::as_f64).unwrap_or(0.0);
    if ctx.coverage < min_cov - 1e-9 {
        score = None;
    }
    assign(&mut nodes, 1.0, scale);
    let mut rows = Vec::new();
    flatten(&nodes, score.is_some(), &mut rows);
    let bands = ov.and_then(|o| o.get("bands")).or_else(|| model.get("bands"));
    let band = match (bands, score) {
        (Some(b), Some(s)) => b
            .as_array()
            .unwrap()
            .iter()
            .rfind(|band| band["min"].as_f64().unwrap() <= s)
            .map(|band| band["name"].as_str().unwrap().to_string()),
        _ => None,
    };
    Ok(Outcome { score, coverage: ctx.coverage, band, segment, rows })
}

/// The band with hysteresis (docs/model-format.md, Band hysteresis), from the JSON model: the
/// bands and margin of the override named `segment` (each falling back to the model's), and
/// the near boundaries `lo - h` and `hi + h` the outcome depends on, for the tolerance.
pub fn band_after(
    model: &Value,
    segment: Option<&str>,
    score: Option<f64>,
    previous: Option<&str>,
) -> (Option<String>, Vec<f64>) {
    let ov = segment.and_then(|s| model["segments"]["overrides"].get(s));
    let bands = ov.and_then(|o| o.get("bands")).or_else(|| model.get("bands"));
    let h = ov
        .and_then(|o| o.get("band_hysteresis"))
        .or_else(|| model.get("band_hysteresis"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let (Some(bands), Some(s)) = (bands.and_then(Value::as_array), score) else { return (None, vec![]) };
    let mins: Vec<f64> = bands.iter().map(|b| b["min"].as_f64().unwrap()).collect();
    let names: Vec<&str> = bands.iter().map(|b| b["name"].as_str().unwrap()).collect();
    let mut plain = 0;
    for (i, m) in mins.iter().enumerate() {
        if *m <= s {
            plain = i;
        }
    }
    let Some(p) = previous.and_then(|prev| names.iter().position(|n| *n == prev)) else {
        return (Some(names[plain].to_string()), mins);
    };
    let lo = mins[p] - h;
    let hi = mins.get(p + 1).map(|m| m + h);
    let mut near = mins.clone();
    near.push(lo);
    near.extend(hi);
    let keep = lo <= s && hi.is_none_or(|hi| s < hi);
    (Some(names[if keep { p } else { plain }].to_string()), near)
}
