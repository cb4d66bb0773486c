//! Checks of a Canary's analysis: its schedule, strategy and traffic fields, its metrics and its
//! webhooks.

use std::collections::BTreeMap;

use super::{check_matches, check_range};
use crate::api::analysis::{CanaryAnalysis, CanaryMetric, Strategy};
use crate::api::canary::CanarySpec;
use crate::api::duration;
use crate::api::provider::Provider;
use crate::api::structural::Problem;

pub(super) fn check_analysis(
    path: &str,
    analysis: &CanaryAnalysis,
    spec: &CanarySpec,
    provider: Option<&Provider>,
    out: &mut Vec<Problem>,
) {
    let p = |field: &str| format!("{path}.{field}");

    // Schedule.
    if let Some(interval) = analysis.interval.as_deref() {
        match duration::parse(interval) {
            None => out.push(Problem::warning(
                p("interval"),
                format!("cannot parse {interval:?} as a duration; 60s is used"),
            )),
            Some(d) if d < crate::api::analysis::MIN_INTERVAL => {
                out.push(Problem::warning(
                    p("interval"),
                    format!("{interval} is below the 10s minimum; 10s is used"),
                ));
            }
            Some(d) if d > crate::api::analysis::MAX_INTERVAL => {
                out.push(Problem::warning(
                    p("interval"),
                    format!("{interval} is above the 24h maximum; 24h is used"),
                ));
            }
            Some(_) => {}
        }
    }
    if analysis.preflight.is_some() && (analysis.metrics().is_empty() || spec.skip_analysis()) {
        let why = "has no effect: the query pre-flight runs only for an analysis with metrics";
        out.push(Problem::warning(p("preflight"), why));
    }
    if analysis.threshold == Some(0) {
        out.push(Problem::warning(
            p("threshold"),
            "threshold below 1; 1 is used",
        ));
    }
    for (field, value, min, max) in [
        ("threshold", analysis.threshold, 0, i32::MAX),
        ("iterations", analysis.iterations, 0, i32::MAX),
        ("mirrorWeight", analysis.mirror_weight, 0, 100),
        ("maxWeight", analysis.max_weight, 0, 100),
        ("stepWeight", analysis.step_weight, 0, 100),
        (
            "stepWeightPromotion",
            analysis.step_weight_promotion,
            0,
            100,
        ),
        (
            "primaryReadyThreshold",
            analysis.primary_ready_threshold,
            0,
            100,
        ),
        (
            "canaryReadyThreshold",
            analysis.canary_ready_threshold,
            0,
            100,
        ),
    ] {
        check_range(&p(field), value, min, max, out);
    }
    if let Some(sa) = &analysis.session_affinity {
        check_range(&p("sessionAffinity.maxAge"), sa.max_age, 0, i32::MAX, out);
    }

    // Strategy: exactly one of iterations, stepWeight, stepWeights (Flagger's CRD oneOf).
    let has_iterations = analysis.iterations.is_some_and(|i| i > 0);
    let has_step = analysis.step_weight.is_some();
    let has_steps = analysis
        .step_weights
        .as_ref()
        .is_some_and(|s| !s.is_empty());
    if has_iterations && (has_step || has_steps) {
        out.push(Problem::new(
            path,
            "iterations cannot be combined with stepWeight or stepWeights: set iterations for A/B testing or blue/green, or step weights for a canary",
        ));
    }
    if has_step && has_steps {
        out.push(Problem::new(
            path,
            "stepWeight and stepWeights are mutually exclusive",
        ));
    }
    if !has_iterations && !has_step && !has_steps && !spec.skip_analysis.unwrap_or(false) {
        out.push(Problem::new(
            path,
            "one of iterations, stepWeight or stepWeights is required; without it the analysis never advances",
        ));
    }
    if analysis.step_weight == Some(0) && !has_iterations && !has_steps {
        out.push(Problem::new(
            p("stepWeight"),
            "must be greater than 0; with 0 the canary never advances",
        ));
    }
    if let (Some(step), Some(max)) = (analysis.step_weight, analysis.max_weight)
        && !has_steps
        && step > max
        && max > 0
    {
        out.push(Problem::new(
            p("stepWeight"),
            format!("stepWeight ({step}) is greater than maxWeight ({max})"),
        ));
    }
    if let Some(steps) = analysis.step_weights.as_deref() {
        for (i, w) in steps.iter().enumerate() {
            check_range(&format!("{path}.stepWeights[{i}]"), Some(*w), 1, 100, out);
            if i > 0 && *w <= steps[i - 1] {
                out.push(Problem::new(
                    format!("{path}.stepWeights[{i}]"),
                    format!("step weights must increase ({w} follows {})", steps[i - 1]),
                ));
            }
        }
        if has_steps && analysis.max_weight.is_some() {
            out.push(Problem::warning(
                p("maxWeight"),
                format!(
                    "ignored when stepWeights is set (the last step, {}, is the maximum)",
                    steps.last().copied().unwrap_or(0)
                ),
            ));
        }
    }

    let strategy = analysis.strategy();
    check_matches(&p("match"), analysis.matches(), out);
    if let Some(provider) = provider {
        out.extend(crate::api::provider::capability_problems(
            provider, path, analysis, spec,
        ));
    }
    if analysis.mirror_weight.is_some() && !analysis.mirror() {
        out.push(Problem::warning(
            p("mirrorWeight"),
            "ignored because mirror is not enabled",
        ));
    }
    if let Some(sa) = &analysis.session_affinity {
        if sa.cookie_name.is_empty() {
            out.push(Problem::new(
                p("sessionAffinity.cookieName"),
                "must not be empty",
            ));
        }
        if sa.primary_cookie_name.as_deref() == Some(sa.cookie_name.as_str()) {
            out.push(Problem::new(
                p("sessionAffinity"),
                "can't use the same cookie name for both primary and cookie name; please update them to be different",
            ));
        }
        if strategy != Strategy::Canary {
            out.push(Problem::warning(
                p("sessionAffinity"),
                "session affinity is only used by the canary strategy",
            ));
        }
    }

    check_metrics(path, analysis.metrics(), out);
    check_webhooks(path, analysis, out);
    for (i, alert) in analysis.alerts().iter().enumerate() {
        if alert.provider_ref.name.is_empty() {
            out.push(Problem::new(
                format!("{path}.alerts[{i}].providerRef.name"),
                "must not be empty",
            ));
        }
        if alert.severity().is_none() {
            out.push(Problem::new(
                format!("{path}.alerts[{i}].severity"),
                format!(
                    "unknown severity {:?}; must be info, warn or error",
                    alert.severity.as_deref().unwrap_or("")
                ),
            ));
        }
    }
}

fn check_metrics(path: &str, metrics: &[CanaryMetric], out: &mut Vec<Problem>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, metric) in metrics.iter().enumerate() {
        let mp = format!("{path}.metrics[{i}]");
        if metric.name.is_empty() {
            out.push(Problem::new(format!("{mp}.name"), "must not be empty"));
        } else if let Some(first) = seen.insert(&metric.name, i) {
            out.push(Problem::new(
                format!("{mp}.name"),
                format!(
                    "duplicate metric name {:?} (also metrics[{first}])",
                    metric.name
                ),
            ));
        }
        if !metric.is_usable() {
            out.push(Problem::new(
                mp.clone(),
                format!(
                    "metric {:?} has no query or templateRef and is not a built-in check (request-success-rate, request-duration)",
                    metric.name
                ),
            ));
        }
        if metric.name != "request-success-rate"
            && metric.name != "request-duration"
            && let Some(builtin) = metric.builtin()
        {
            out.push(Problem::warning(
                format!("{mp}.name"),
                format!(
                    "{:?} is the deprecated name of the built-in check {}; use name: {}",
                    metric.name,
                    builtin.as_str(),
                    builtin.as_str()
                ),
            ));
        }
        if let Some(threshold) = metric.threshold
            && metric.threshold_range.is_none()
        {
            let bound = if metric.builtin()
                == Some(crate::api::analysis::BuiltinMetric::RequestSuccessRate)
            {
                "min"
            } else {
                "max"
            };
            out.push(Problem::warning(
                format!("{mp}.threshold"),
                format!("deprecated: use thresholdRange: {{{bound}: {threshold}}}"),
            ));
        }
        if let Some(tr) = &metric.template_ref {
            if tr.name.is_empty() {
                out.push(Problem::new(
                    format!("{mp}.templateRef.name"),
                    "must not be empty",
                ));
            }
            if metric.builtin().is_some() {
                out.push(Problem::warning(
                    mp.clone(),
                    format!(
                        "{:?} is a built-in check name: Serin runs only the template (Flagger also runs the built-in query)",
                        metric.name
                    ),
                ));
            }
        }
        crate::api::comparison::validate(&mp, metric, out);
        if let Some(interval) = metric.interval.as_deref()
            && duration::parse(interval).is_none()
        {
            out.push(Problem::new(
                format!("{mp}.interval"),
                format!("cannot parse {interval:?} as a duration (e.g. 30s, 1m)"),
            ));
        }
        match &metric.threshold_range {
            Some(range) => {
                if let (Some(min), Some(max)) = (range.min, range.max)
                    && min > max
                {
                    out.push(Problem::new(
                        format!("{mp}.thresholdRange"),
                        format!("min ({min}) is greater than max ({max})"),
                    ));
                }
                if range.min.is_none() && range.max.is_none() {
                    out.push(Problem::warning(
                        format!("{mp}.thresholdRange"),
                        "has neither min nor max: the check always passes",
                    ));
                }
            }
            None if metric.threshold.is_none() && metric.is_usable() => {
                let message = if metric.builtin().is_some() {
                    "no thresholdRange: the check always passes"
                } else {
                    "no thresholdRange: the check passes only while the value is 0 or below"
                };
                out.push(Problem::warning(mp.clone(), message));
            }
            None => {}
        }
    }
}

fn check_webhooks(path: &str, analysis: &CanaryAnalysis, out: &mut Vec<Problem>) {
    for (i, hook) in analysis.webhooks().iter().enumerate() {
        let hp = format!("{path}.webhooks[{i}]");
        if hook.name.is_empty() {
            out.push(Problem::new(format!("{hp}.name"), "must not be empty"));
        }
        if let Err(err) = hook.hook_type() {
            out.push(Problem::new(format!("{hp}.type"), err.to_string()));
        }
        match url::Url::parse(&hook.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) | Err(_) => out.push(Problem::new(
                format!("{hp}.url"),
                format!("{:?} is not an absolute http:// or https:// URL", hook.url),
            )),
        }
        check_range(&format!("{hp}.retries"), hook.retries, 0, i32::MAX, out);
        if let Some(timeout) = hook.timeout.as_deref().filter(|t| t.len() >= 2) {
            match duration::parse(timeout) {
                None => out.push(Problem::warning(
                    format!("{hp}.timeout"),
                    format!("cannot parse {timeout:?}; 10s is used"),
                )),
                Some(d) if d > crate::api::analysis::MAX_WEBHOOK_TIMEOUT => {
                    out.push(Problem::warning(
                        format!("{hp}.timeout"),
                        format!("{timeout} is above the 1h maximum; 1h is used"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
}
