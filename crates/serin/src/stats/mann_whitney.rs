//! The Mann-Whitney U test (one-sided: "the first sample is larger") and its effect sizes.
//!
//! The p-value is exact when one sample has at most [`EXACT_MAX_N`] values and there are no
//! ties (the same rule as `scipy.stats.mannwhitneyu(method="auto")`), otherwise the normal
//! approximation with tie correction and continuity correction.

use super::normal;

/// Largest size of the smaller sample for which the exact distribution is used.
pub const EXACT_MAX_N: usize = 8;
/// Above this many pairs the Hodges-Lehmann shift is replaced by the difference of medians
/// (the pairwise differences would not fit comfortably in memory).
pub const HODGES_LEHMANN_MAX_PAIRS: usize = 4_000_000;

/// The result of [`test_greater`].
#[derive(Clone, Debug, PartialEq)]
pub struct MannWhitney {
    /// `U` of the first sample: pairs `(x, y)` with `x > y`, ties counting ½.
    pub u: f64,
    /// One-sided p-value of "x tends to be larger than y".
    pub p_value: f64,
    /// Whether the p-value is exact (otherwise the normal approximation).
    pub exact: bool,
}

/// One-sided Mann-Whitney U test of `H1: x is stochastically larger than y`. Returns `None`
/// when a sample is empty or holds a value that is not finite.
pub fn test_greater(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let ranked = rank(x, y);
    let u = ranked.rank_sum_x - (n1 * (n1 + 1)) as f64 / 2.0;
    if ranked.tie_term == 0.0 && n1.min(n2) <= EXACT_MAX_N {
        return Some(MannWhitney {
            u,
            p_value: exact_sf(u, n1, n2),
            exact: true,
        });
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let n = n1f + n2f;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((n + 1.0) - ranked.tie_term / (n * (n - 1.0)));
    let p_value = if variance <= 0.0 {
        // Every value is the same: no evidence either way.
        1.0
    } else {
        normal::sf((u - mean - 0.5) / variance.sqrt())
    };
    Some(MannWhitney {
        u,
        p_value,
        exact: false,
    })
}

struct Ranked {
    rank_sum_x: f64,
    /// `Σ (t³ − t)` over groups of tied values.
    tie_term: f64,
}

/// Mid-ranks of the pooled sample.
fn rank(x: &[f64], y: &[f64]) -> Ranked {
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Positions i..j (0-based) share the mid-rank of ranks i+1..=j.
        let mid_rank = (i + 1 + j) as f64 / 2.0;
        let in_x = pooled[i..j].iter().filter(|(_, is_x)| *is_x).count();
        rank_sum_x += mid_rank * in_x as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    Ranked {
        rank_sum_x,
        tie_term,
    }
}

/// `P(U ≥ u)` under the null hypothesis, by counting the arrangements with each `U`
/// (`c(u; m, n) = c(u − n; m − 1, n) + c(u; m, n − 1)`), without ties.
fn exact_sf(u: f64, n1: usize, n2: usize) -> f64 {
    let (m, n) = if n1 <= n2 { (n1, n2) } else { (n2, n1) };
    let max_u = m * n;
    // counts[j][k]: number of arrangements of j values of the small sample and n of the other
    // with U = k, built up over n; floats because the counts exceed u64 for large n.
    // With none of the other sample (nn = 0) only U = 0 is possible.
    let mut prev: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; m + 1];
    for row in prev.iter_mut() {
        row[0] = 1.0;
    }
    for nn in 1..=n {
        let mut next: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; m + 1];
        next[0][0] = 1.0;
        for j in 1..=m {
            for k in 0..=j * nn {
                let with_small_last = if k >= nn { next[j - 1][k - nn] } else { 0.0 };
                next[j][k] = with_small_last + prev[j][k];
            }
        }
        prev = next;
    }
    let counts = &prev[m];
    let total: f64 = counts.iter().sum();
    // U of the first sample; the distribution is symmetric, so the count of arrangements with
    // the small sample's U = k is the same whichever sample is the first.
    let threshold = u.ceil() as usize;
    let tail: f64 = counts.iter().skip(threshold).sum();
    (tail / total).clamp(0.0, 1.0)
}

/// Effect sizes of `x` against `y`.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    /// Hodges-Lehmann shift: the median of all differences `x − y` (the difference of the
    /// medians above [`HODGES_LEHMANN_MAX_PAIRS`] pairs).
    pub shift: f64,
    /// Common-language effect size `U / (n₁ n₂)`: the probability that a value of `x` is larger
    /// than one of `y` (ties ½). 0.5 means no difference.
    pub probability_greater: f64,
}

/// The effect sizes; `None` for an empty sample.
pub fn effect(x: &[f64], y: &[f64]) -> Option<Effect> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let ranked = rank(x, y);
    let (n1, n2) = (x.len(), y.len());
    let u = ranked.rank_sum_x - (n1 * (n1 + 1)) as f64 / 2.0;
    let shift = if n1.saturating_mul(n2) <= HODGES_LEHMANN_MAX_PAIRS {
        let mut diffs: Vec<f64> = x
            .iter()
            .flat_map(|a| y.iter().map(move |b| a - b))
            .collect();
        median(&mut diffs)
    } else {
        median(&mut x.to_vec()) - median(&mut y.to_vec())
    };
    Some(Effect {
        shift,
        probability_greater: u / (n1 * n2) as f64,
    })
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(upper);
    (lower + upper) / 2.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    // Reference values: scipy.stats.mannwhitneyu(x, y, alternative="greater") (scipy 1.17.1).
    const SCIPY_NURSING_U: f64 = 58.0;
    const SCIPY_NURSING_P: f64 = 0.06645972909265946;
    const SCIPY_EXACT_P: f64 = 0.05555555555555555;
    const SCIPY_EXACT_P_REVERSED: f64 = 0.9682539682539683;
    const SCIPY_TIES_U: f64 = 840.0;
    const SCIPY_TIES_P: f64 = 0.0021716440741883646;

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is a data value, not π
    fn exact_small_samples() {
        let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
        let r = test_greater(&x, &y).unwrap();
        assert_eq!(r.u, SCIPY_NURSING_U);
        assert!(!r.exact, "n = 9 with ties uses the approximation");
        assert!(close(r.p_value, SCIPY_NURSING_P, 1e-12), "{}", r.p_value);

        let x = [19.0, 22.0, 16.0, 29.0, 24.0];
        let y = [20.0, 11.0, 17.0, 12.0];
        let r = test_greater(&x, &y).unwrap();
        assert!(r.exact);
        assert_eq!(r.u, 17.0);
        assert!(close(r.p_value, SCIPY_EXACT_P, 1e-12), "{}", r.p_value);
        // The other direction.
        let r = test_greater(&y, &x).unwrap();
        assert_eq!(r.u, 3.0);
        assert!(
            close(r.p_value, SCIPY_EXACT_P_REVERSED, 1e-12),
            "{}",
            r.p_value
        );
    }

    #[test]
    fn asymptotic_with_ties() {
        let x: Vec<f64> = (0..40).map(|i| f64::from(i % 7) + 0.5).collect();
        let y: Vec<f64> = (0..30).map(|i| f64::from(i % 5)).collect();
        let r = test_greater(&x, &y).unwrap();
        assert!(!r.exact);
        assert_eq!(r.u, SCIPY_TIES_U);
        assert!(close(r.p_value, SCIPY_TIES_P, 1e-12), "{}", r.p_value);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(test_greater(&[], &[1.0]).is_none());
        assert!(test_greater(&[f64::NAN], &[1.0]).is_none());
        let same = [2.0; 20];
        let r = test_greater(&same, &same).unwrap();
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn effects() {
        let x = [19.0, 22.0, 16.0, 29.0, 24.0];
        let y = [20.0, 11.0, 17.0, 12.0];
        let e = effect(&x, &y).unwrap();
        // Differences sorted: -4 -1 -1 2 2 4 4 5 5 7 7 8 9 10 11 12 12 13 17 18 → median 7.
        assert_eq!(e.shift, 7.0);
        assert_eq!(e.probability_greater, 17.0 / 20.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
