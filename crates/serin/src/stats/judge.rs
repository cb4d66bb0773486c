//! The canary-versus-primary judgement: "is the canary worse than the primary by more than the
//! allowed degradation?", with a minimum-sample guard.
//!
//! Both tests are one-sided tests of `H0: canary ≤ primary + allowed` against
//! `H1: canary > primary + allowed` (higher is worse). The canary fails only when `H0` is
//! rejected at the configured confidence, so on identical versions the false-alarm rate is at
//! most `1 − confidence`, and a degradation smaller than the allowance is not a failure however
//! many samples there are. Fewer samples than the minimum is [`Outcome::Inconclusive`].

use std::fmt;

use super::{mann_whitney, normal, proportions};

/// What the judgement decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No evidence that the canary is worse than allowed.
    Pass,
    /// The canary is worse than the primary by more than allowed, at the confidence.
    Fail,
    /// Too few samples to judge: hold and measure again.
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// The settings of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Confidence of a failure, in (0, 1): `1 − confidence` is the false-alarm rate.
    pub confidence: f64,
    /// Fewest samples (rank test) or events counted (proportions) per version.
    pub min_samples: usize,
    /// Allowed degradation relative to the primary's level (0.05 = 5 % worse).
    pub relative: f64,
    /// Allowed degradation in the metric's unit. The allowance is the larger of the two.
    pub absolute: f64,
}

impl Settings {
    fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }

    /// The allowed degradation in the metric's unit for a primary at `level`.
    pub fn allowance(&self, level: f64) -> f64 {
        self.absolute
            .max(0.0)
            .max(self.relative.max(0.0) * level.abs())
    }
}

/// Which test produced a [`Judgement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    MannWhitney,
    Proportion,
}

/// A judgement with everything needed to explain it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub outcome: Outcome,
    pub test: Test,
    /// Samples (rank test) or events counted (proportions) of each version.
    pub canary_n: f64,
    pub primary_n: f64,
    /// Mann-Whitney `U` of the shifted canary, or the observed difference of proportions.
    pub statistic: f64,
    /// One-sided p-value (rank test).
    pub p_value: Option<f64>,
    /// Lower confidence bound of the difference (proportions).
    pub bound: Option<f64>,
    /// Observed degradation: Hodges-Lehmann shift (rank test) or difference of proportions,
    /// in the metric's unit.
    pub effect: f64,
    /// The primary's level: median (rank test) or proportion.
    pub primary_level: f64,
    /// Allowed degradation in the metric's unit.
    pub allowance: f64,
    pub confidence: f64,
    pub min_samples: usize,
}

impl Judgement {
    /// The effect relative to the primary's level, when that is not 0.
    pub fn relative_effect(&self) -> Option<f64> {
        (self.primary_level != 0.0 && self.primary_level.is_finite())
            .then(|| self.effect / self.primary_level.abs())
    }
}

/// A number in a message: 4 significant digits, no exponent for everyday magnitudes.
pub struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() {
            return write!(f, "{v}");
        }
        let magnitude = v.abs().log10().floor() as i32;
        if !(-4..6).contains(&magnitude) {
            return write!(f, "{v:.3e}");
        }
        let decimals = (3 - magnitude).max(0) as usize;
        let text = format!("{v:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        f.write_str(text)
    }
}

impl fmt::Display for Judgement {
    /// `mann-whitney U=… p=0.0012 (α 0.05), effect +12.5% (+0.0123), allowed +5% (+0.0049),
    /// samples canary 60 primary 60`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: f64| format!("{:+.2}%", v * 100.0);
        match self.test {
            Test::MannWhitney => write!(f, "mann-whitney U={}", Num(self.statistic))?,
            Test::Proportion => write!(f, "proportion difference={}", Num(self.statistic))?,
        }
        if let Some(p) = self.p_value {
            write!(f, " p={} (alpha {})", Num(p), Num(1.0 - self.confidence))?;
        }
        if let Some(b) = self.bound {
            write!(
                f,
                " lower bound={} ({}% confidence)",
                Num(b),
                Num(self.confidence * 100.0)
            )?;
        }
        write!(f, ", effect {}", Num(self.effect))?;
        if let Some(rel) = self.relative_effect() {
            write!(f, " ({})", pct(rel))?;
        }
        write!(f, ", allowed {}", Num(self.allowance))?;
        if self.primary_level != 0.0 && self.primary_level.is_finite() {
            write!(f, " ({})", pct(self.allowance / self.primary_level.abs()))?;
        }
        let unit = match self.test {
            Test::MannWhitney => "samples",
            Test::Proportion => "events counted",
        };
        write!(
            f,
            ", {unit} canary {} primary {} (min {})",
            Num(self.canary_n),
            Num(self.primary_n),
            self.min_samples
        )
    }
}

/// Rank test of latency-like samples (higher is worse). `None` when a sample holds a value
/// that is not finite.
pub fn compare_samples(canary: &[f64], primary: &[f64], s: &Settings) -> Option<Judgement> {
    if canary.iter().chain(primary).any(|v| !v.is_finite()) {
        return None;
    }
    let primary_level = mann_whitney::median(&mut primary.to_vec());
    let primary_level = if primary_level.is_nan() {
        0.0
    } else {
        primary_level
    };
    let allowance = s.allowance(primary_level);
    let mut judgement = Judgement {
        outcome: Outcome::Inconclusive,
        test: Test::MannWhitney,
        canary_n: canary.len() as f64,
        primary_n: primary.len() as f64,
        statistic: f64::NAN,
        p_value: None,
        bound: None,
        effect: f64::NAN,
        primary_level,
        allowance,
        confidence: s.confidence,
        min_samples: s.min_samples,
    };
    if canary.len() < s.min_samples.max(1) || primary.len() < s.min_samples.max(1) {
        return Some(judgement);
    }
    let shifted: Vec<f64> = canary.iter().map(|v| v - allowance).collect();
    let test = mann_whitney::test_greater(&shifted, primary)?;
    let effect = mann_whitney::effect(canary, primary)?;
    judgement.statistic = test.u;
    judgement.p_value = Some(test.p_value);
    judgement.effect = effect.shift;
    judgement.outcome = if test.p_value < s.alpha() {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    Some(judgement)
}

/// Bad events out of a total, for one version.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    pub events: f64,
    pub total: f64,
}

/// Test on two proportions (error-rate-like counts; higher is worse). `None` when a count is
/// negative, not finite, or has more events than its total.
pub fn compare_proportions(canary: Counts, primary: Counts, s: &Settings) -> Option<Judgement> {
    for c in [canary, primary] {
        if !c.events.is_finite() || !c.total.is_finite() || c.events < 0.0 || c.events > c.total {
            return None;
        }
    }
    let rate = |c: Counts| {
        if c.total > 0.0 {
            c.events / c.total
        } else {
            0.0
        }
    };
    let primary_level = rate(primary);
    let allowance = s.allowance(primary_level);
    let mut judgement = Judgement {
        outcome: Outcome::Inconclusive,
        test: Test::Proportion,
        canary_n: canary.total,
        primary_n: primary.total,
        statistic: rate(canary) - primary_level,
        p_value: None,
        bound: None,
        effect: rate(canary) - primary_level,
        primary_level,
        allowance,
        confidence: s.confidence,
        min_samples: s.min_samples,
    };
    let min = s.min_samples.max(1) as f64;
    if canary.total < min || primary.total < min {
        return Some(judgement);
    }
    let z = normal::quantile(s.confidence);
    let (lower, _) = proportions::difference_interval(
        canary.events,
        canary.total,
        primary.events,
        primary.total,
        z,
    )?;
    judgement.bound = Some(lower);
    judgement.outcome = if lower > allowance {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    Some(judgement)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(relative: f64, min_samples: usize) -> Settings {
        Settings {
            confidence: 0.95,
            min_samples,
            relative,
            absolute: 0.0,
        }
    }

    #[test]
    fn too_few_samples_is_inconclusive() {
        let canary = [10.0; 5];
        let primary = [1.0; 50];
        let j = compare_samples(&canary, &primary, &settings(0.0, 10)).unwrap();
        assert_eq!(j.outcome, Outcome::Inconclusive);
        assert_eq!(j.p_value, None);
        let j = compare_proportions(
            Counts {
                events: 50.0,
                total: 99.0,
            },
            Counts {
                events: 0.0,
                total: 1000.0,
            },
            &settings(0.0, 100),
        )
        .unwrap();
        assert_eq!(j.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn slower_canary_fails_and_small_shift_within_allowance_passes() {
        let primary: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i)).collect();
        let slower: Vec<f64> = primary.iter().map(|v| v * 1.3).collect();
        let j = compare_samples(&slower, &primary, &settings(0.05, 20)).unwrap();
        assert_eq!(j.outcome, Outcome::Fail, "{j}");
        assert!(j.p_value.unwrap() < 0.05);
        assert!(j.relative_effect().unwrap() > 0.25);
        // 3 % slower with 5 % allowed: pass, even though a plain rank test would notice.
        let bit_slower: Vec<f64> = primary.iter().map(|v| v * 1.03).collect();
        let j = compare_samples(&bit_slower, &primary, &settings(0.05, 20)).unwrap();
        assert_eq!(j.outcome, Outcome::Pass, "{j}");
        let j = compare_samples(&primary, &primary, &settings(0.0, 20)).unwrap();
        assert_eq!(j.outcome, Outcome::Pass, "{j}");
        assert!(compare_samples(&[f64::NAN], &primary, &settings(0.0, 1)).is_none());
    }

    #[test]
    fn error_rates() {
        let primary = Counts {
            events: 10.0,
            total: 1000.0,
        };
        let doubled = Counts {
            events: 25.0,
            total: 1000.0,
        };
        let j = compare_proportions(doubled, primary, &settings(0.0, 100)).unwrap();
        assert_eq!(j.outcome, Outcome::Fail, "{j}");
        assert!((j.bound.unwrap() - 0.00539144515554117).abs() < 1e-12);
        // Allowing 200 % more errors than the primary (3 % here): pass.
        let j = compare_proportions(doubled, primary, &settings(2.0, 100)).unwrap();
        assert_eq!(j.outcome, Outcome::Pass, "{j}");
        assert!(
            compare_proportions(
                Counts {
                    events: 5.0,
                    total: 4.0
                },
                primary,
                &settings(0.0, 1)
            )
            .is_none()
        );
    }

    #[test]
    fn message_lists_every_figure() {
        let primary: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i)).collect();
        let slower: Vec<f64> = primary.iter().map(|v| v * 1.3).collect();
        let j = compare_samples(&slower, &primary, &settings(0.05, 20)).unwrap();
        let text = j.to_string();
        assert!(text.starts_with("mann-whitney U="), "{text}");
        for part in [" p=", "(alpha 0.05)", "effect ", "allowed ", "(+5.00%)"] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
        assert!(
            text.ends_with("samples canary 40 primary 40 (min 20)"),
            "{text}"
        );
        assert_eq!(Num(0.000123456).to_string(), "0.0001235");
        assert_eq!(Num(1234.5678).to_string(), "1235");
        assert_eq!(Num(0.5).to_string(), "0.5");
    }
}
