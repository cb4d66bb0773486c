//! Two proportions (error rates): Wilson score intervals and Newcombe's hybrid score interval
//! for the difference (Newcombe 1998, method 10), which keeps its coverage for rates near 0
//! where the Wald interval does not.

/// The Wilson score interval `(lower, upper)` of `events / total` with the normal quantile `z`.
/// `None` when `total` is 0 or `events > total`.
pub fn wilson(events: f64, total: f64, z: f64) -> Option<(f64, f64)> {
    if total.is_nan()
        || total <= 0.0
        || events.is_nan()
        || events < 0.0
        || events > total
        || !z.is_finite()
    {
        return None;
    }
    let p = events / total;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * total);
    let half = z * (p * (1.0 - p) / total + z2 / (4.0 * total * total)).sqrt();
    let denominator = 1.0 + z2 / total;
    Some((
        ((centre - half) / denominator).max(0.0),
        ((centre + half) / denominator).min(1.0),
    ))
}

/// Newcombe's interval `(lower, upper)` for `p₁ − p₂`, each side at the normal quantile `z`
/// (z = 1.645 gives two one-sided 95 % bounds).
pub fn difference_interval(
    events1: f64,
    total1: f64,
    events2: f64,
    total2: f64,
    z: f64,
) -> Option<(f64, f64)> {
    let (l1, u1) = wilson(events1, total1, z)?;
    let (l2, u2) = wilson(events2, total2, z)?;
    let (p1, p2) = (events1 / total1, events2 / total2);
    let d = p1 - p2;
    Some((
        d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const Z95: f64 = 1.959963984540054;
    const Z90: f64 = 1.6448536269514722;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn wilson_interval() {
        // Newcombe (1998), Stat. Med. 17:857, example: 81/263 → 0.2553 to 0.3662.
        let (l, u) = wilson(81.0, 263.0, Z95).unwrap();
        assert!(close(l, 0.2552885198782742) && close(u, 0.36620957698280004));
        // No events: the lower bound is 0, the upper bound is not.
        let (l, u) = wilson(0.0, 10.0, Z90).unwrap();
        assert_eq!(l, 0.0);
        assert!(close(u, 0.21294197008340698));
        assert!(wilson(1.0, 0.0, Z95).is_none());
        assert!(wilson(3.0, 2.0, Z95).is_none());
    }

    #[test]
    fn newcombe_difference() {
        // Newcombe (1998) table II, example (a): 56/70 − 48/80, method 10: 0.0524 to 0.3339.
        let (l, u) = difference_interval(56.0, 70.0, 48.0, 80.0, Z95).unwrap();
        assert!(close(l, 0.05243147240236498) && close(u, 0.333872654036906));
        // 2.5 % against 1 % errors over 1000 requests each, one-sided 95 %.
        let (l, u) = difference_interval(25.0, 1000.0, 10.0, 1000.0, Z90).unwrap();
        assert!(close(l, 0.00539144515554117) && close(u, 0.02530548990709292));
    }
}
