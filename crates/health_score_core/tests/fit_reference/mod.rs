//! A plainly written reference for `fit`: for every set of leaves held at the bound, Newton's
//! method on the others (dense, Gaussian elimination, no shortcuts); the answer is the one set
//! whose solution satisfies the optimality conditions (free β below the bound, the gradient
//! of every bound β pushing up through it). Exponential in the leaves: small problems only.

pub const UPPER: f64 = -1e-6;

/// (intercept, β) minimising (1/N) Σ logloss(y, σ(b + x·β)) + (λ/2)|β|² subject to β ≤ −1e-6.
pub fn reference(x: &[Vec<f64>], y: &[bool], l2: f64) -> (f64, Vec<f64>) {
    let k = x[0].len();
    for mask in 0u32..(1 << k) {
        let bound: Vec<bool> = (0..k).map(|j| mask & (1 << j) != 0).collect();
        let theta = newton(x, y, l2, &bound);
        let g = gradient(x, y, l2, &theta);
        let ok = (0..k).all(|j| if bound[j] { g[j + 1] <= 1e-12 } else { theta[j + 1] < UPPER });
        if ok {
            return (theta[0], theta[1..].to_vec());
        }
    }
    panic!("no set of bound leaves satisfies the optimality conditions");
}

fn sigma(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn z(theta: &[f64], x: &[f64]) -> f64 {
    theta[0] + x.iter().zip(&theta[1..]).map(|(a, b)| a * b).sum::<f64>()
}

fn gradient(x: &[Vec<f64>], y: &[bool], l2: f64, theta: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let mut g = vec![0.0; theta.len()];
    for (xi, &yi) in x.iter().zip(y) {
        let r = sigma(z(theta, xi)) - if yi { 1.0 } else { 0.0 };
        g[0] += r / n;
        for j in 0..xi.len() {
            g[j + 1] += r * xi[j] / n;
        }
    }
    for j in 1..theta.len() {
        g[j] += l2 * theta[j];
    }
    g
}

fn newton(x: &[Vec<f64>], y: &[bool], l2: f64, bound: &[bool]) -> Vec<f64> {
    let k = bound.len();
    let n = y.len() as f64;
    let free: Vec<usize> = std::iter::once(0).chain((0..k).filter(|&j| !bound[j]).map(|j| j + 1)).collect();
    let mut theta = vec![UPPER; k + 1];
    theta[0] = 0.0;
    for _ in 0..100 {
        let g = gradient(x, y, l2, &theta);
        if free.iter().map(|&a| g[a] * g[a]).sum::<f64>().sqrt() < 1e-14 {
            break;
        }
        let m = free.len();
        let mut h = vec![vec![0.0; m + 1]; m];
        for (xi, _) in x.iter().zip(y) {
            let p = sigma(z(&theta, xi));
            let v = |a: usize| if a == 0 { 1.0 } else { xi[a - 1] };
            for (r, &a) in free.iter().enumerate() {
                for (c, &b) in free.iter().enumerate() {
                    h[r][c] += p * (1.0 - p) * v(a) * v(b) / n;
                }
            }
        }
        for (r, &a) in free.iter().enumerate() {
            if a > 0 {
                h[r][r] += l2;
            }
            h[r][m] = -g[a];
        }
        let step = gauss(h);
        for (r, &a) in free.iter().enumerate() {
            theta[a] += step[r];
        }
    }
    theta
}

/// Solves the augmented system by Gaussian elimination with partial pivoting.
#[allow(clippy::needless_range_loop)] // written as the textbook writes it, rows and columns by index
fn gauss(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let m = a.len();
    for c in 0..m {
        let p = (c..m).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap();
        a.swap(c, p);
        for r in c + 1..m {
            let f = a[r][c] / a[c][c];
            for k in c..=m {
                a[r][k] -= f * a[c][k];
            }
        }
    }
    let mut out = vec![0.0; m];
    for r in (0..m).rev() {
        out[r] = (a[r][m] - (r + 1..m).map(|k| a[r][k] * out[k]).sum::<f64>()) / a[r][r];
    }
    out
}
