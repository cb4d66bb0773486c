//! The pass/fail decision of a measured value against its threshold range, worded as
//! Flagger's events (`pkg/controller/scheduler_metrics.go`).

use std::time::Duration;

use super::go_float;
use crate::api::analysis::CanaryMetric;
use crate::api::duration;

/// The range a metric's value must stay within, as `(min, max)`, inclusive: the
/// `thresholdRange`, or the legacy `threshold` as a minimum (`legacy_is_min`, the success
/// rate) or a maximum (everything else), 0 when unset. Request-duration bounds are in
/// milliseconds.
pub fn threshold_range(metric: &CanaryMetric, legacy_is_min: bool) -> (Option<f64>, Option<f64>) {
    if let Some(range) = &metric.threshold_range {
        return (range.min, range.max);
    }
    let threshold = metric.threshold.unwrap_or(0.0);
    if legacy_is_min {
        (Some(threshold), None)
    } else {
        (None, Some(threshold))
    }
}

/// The bound `value` breaks, as `("<", min)` or `(">", max)`: `thresholdRange` bounds are
/// inclusive; without a range the legacy `threshold` is a minimum (`legacy_is_min`, the success
/// rate) or a maximum (custom metrics), 0 when unset.
pub(super) fn broken_bound(
    metric: &CanaryMetric,
    value: f64,
    legacy_is_min: bool,
) -> Option<(&'static str, f64)> {
    if let Some(range) = &metric.threshold_range {
        if let Some(min) = range.min
            && value < min
        {
            return Some(("<", min));
        }
        if let Some(max) = range.max
            && value > max
        {
            return Some((">", max));
        }
        return None;
    }
    let threshold = metric.threshold.unwrap_or(0.0);
    if legacy_is_min {
        (value < threshold).then_some(("<", threshold))
    } else {
        (value > threshold).then_some((">", threshold))
    }
}

/// The built-in success-rate check: `None` passes, `Some(message)` halts.
pub fn success_rate_verdict(id: &str, metric: &CanaryMetric, value: f64) -> Option<String> {
    broken_bound(metric, value, true).map(|(op, bound)| {
        format!(
            "Halt {id} advancement success rate {value:.2}% {op} {}%",
            go_float(bound)
        )
    })
}

/// Bounds in milliseconds, truncated to whole milliseconds as Flagger does.
fn ms_bound(bound: f64) -> Duration {
    let ms = bound.trunc();
    if ms.is_finite() && ms > 0.0 {
        Duration::from_millis(ms as u64)
    } else {
        Duration::ZERO
    }
}

/// The built-in request-duration check (bounds in milliseconds; legacy `threshold` is a
/// maximum).
pub fn duration_verdict(id: &str, metric: &CanaryMetric, value: Duration) -> Option<String> {
    let fmt = duration::format;
    if let Some(range) = &metric.threshold_range {
        if let Some(min) = range.min {
            // A negative minimum cannot be violated by a duration.
            if min > 0.0 && value < ms_bound(min) {
                return Some(format!(
                    "Halt {id} advancement request duration {} < {}",
                    fmt(value),
                    fmt(ms_bound(min))
                ));
            }
        }
        if let Some(max) = range.max {
            let violated = if max < 0.0 {
                true
            } else {
                value > ms_bound(max)
            };
            if violated {
                return Some(format!(
                    "Halt {id} advancement request duration {} > {}",
                    fmt(value),
                    fmt(ms_bound(max))
                ));
            }
        }
        return None;
    }
    let max = ms_bound(metric.threshold.unwrap_or(0.0));
    (value > max).then(|| {
        format!(
            "Halt {id} advancement request duration {} > {}",
            fmt(value),
            fmt(max)
        )
    })
}

/// A custom (inline or template) check; the legacy `threshold` is a maximum.
pub fn custom_verdict(id: &str, metric: &CanaryMetric, value: f64) -> Option<String> {
    let name = &metric.name;
    broken_bound(metric, value, false).map(|(op, bound)| {
        format!(
            "Halt {id} advancement {name} {value:.2} {op} {}",
            go_float(bound)
        )
    })
}
