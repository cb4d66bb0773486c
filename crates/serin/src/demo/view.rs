//! The live terminal view: per canary its phase, a weight bar, the last metric values against
//! their thresholds and the requests per second per workload and version. Pure rendering.

use std::fmt::Write as _;

/// One metric of a canary as last measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub name: String,
    /// None: no data yet.
    pub value: Option<f64>,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

/// Requests per second of one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub workload: String,
    pub version: String,
    pub rps: f64,
    /// Share of 5xx answers, percent.
    pub errors_pct: f64,
}

/// One canary's line group.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRow {
    pub name: String,
    pub phase: String,
    pub weight: i64,
    /// `maxWeight` of a weighted analysis; None for A/B.
    pub max_weight: Option<i64>,
    pub iterations: i64,
    /// `iterations` of an A/B analysis.
    pub total_iterations: Option<i64>,
    pub failed_checks: i64,
    pub threshold: i64,
    pub metrics: Vec<MetricRow>,
    pub rates: Vec<Rate>,
}

/// `[#####.....]` for a weight from 0 to 100.
pub fn weight_bar(weight: i64, width: usize) -> String {
    let filled = usize::try_from(weight.clamp(0, 100)).unwrap_or(0) * width / 100;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The metric value against its threshold: `error-rate 0.00 ≤ 1 ok`, `latency 812 > 500 FAIL`.
pub fn metric_text(m: &MetricRow) -> String {
    match m.value {
        None => format!("{} (no data yet)", m.name),
        Some(v) => {
            let mut bounds = Vec::new();
            let mut ok = true;
            if let Some(max) = m.max {
                ok &= v <= max;
                bounds.push(format!(
                    "{} {}",
                    if v <= max { "<=" } else { ">" },
                    number(max)
                ));
            }
            if let Some(min) = m.min {
                ok &= v >= min;
                bounds.push(format!(
                    "{} {}",
                    if v >= min { ">=" } else { "<" },
                    number(min)
                ));
            }
            format!(
                "{} {} {} {}",
                m.name,
                number(v),
                bounds.join(" "),
                if ok { "ok" } else { "FAIL" }
            )
        }
    }
}

/// The lines of one canary.
pub fn render(row: &CanaryRow) -> Vec<String> {
    let mut head = format!(
        "{:<9} {:<12} {} {:>3}%",
        row.name,
        row.phase,
        weight_bar(row.weight, 20),
        row.weight
    );
    if let Some(total) = row.total_iterations {
        let _ = write!(head, "  iteration {}/{total}", row.iterations);
    } else if let Some(max) = row.max_weight {
        let _ = write!(head, "  (max {max}%)");
    }
    let _ = write!(
        head,
        "  failed checks {}/{}",
        row.failed_checks, row.threshold
    );
    let mut lines = vec![head];
    if !row.metrics.is_empty() {
        let metrics: Vec<String> = row.metrics.iter().map(metric_text).collect();
        lines.push(format!("          metrics: {}", metrics.join(" | ")));
    }
    if !row.rates.is_empty() {
        let rates: Vec<String> = row
            .rates
            .iter()
            .map(|r| {
                let mut s = format!("{} {} {:.1} rps", r.workload, r.version, r.rps);
                if r.errors_pct > 0.0 {
                    let _ = write!(s, " ({:.0}% 5xx)", r.errors_pct);
                }
                s
            })
            .collect();
        lines.push(format!("          traffic: {}", rates.join(" | ")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_and_metrics() {
        assert_eq!(weight_bar(0, 10), "[..........]");
        assert_eq!(weight_bar(50, 10), "[#####.....]");
        assert_eq!(weight_bar(130, 4), "[####]");
        let m = |v| MetricRow {
            name: "latency".into(),
            value: v,
            max: Some(500.0),
            min: None,
        };
        assert_eq!(metric_text(&m(Some(812.4))), "latency 812 > 500 FAIL");
        assert_eq!(metric_text(&m(Some(3.456))), "latency 3.46 <= 500 ok");
        assert_eq!(metric_text(&m(None)), "latency (no data yet)");
    }

    #[test]
    fn a_canary_row() {
        let row = CanaryRow {
            name: "backend".into(),
            phase: "Progressing".into(),
            weight: 20,
            max_weight: Some(50),
            iterations: 0,
            total_iterations: None,
            failed_checks: 1,
            threshold: 5,
            metrics: vec![MetricRow {
                name: "error-rate".into(),
                value: Some(0.0),
                max: Some(1.0),
                min: None,
            }],
            rates: vec![Rate {
                workload: "backend-primary".into(),
                version: "5.0.0".into(),
                rps: 8.0,
                errors_pct: 0.0,
            }],
        };
        assert_eq!(
            render(&row),
            vec![
                "backend   Progressing  [####................]  20%  (max 50%)  failed checks 1/5",
                "          metrics: error-rate 0.00 <= 1.00 ok",
                "          traffic: backend-primary 5.0.0 8.0 rps",
            ]
        );
    }
}
