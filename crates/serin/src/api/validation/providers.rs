//! Checks of the provider resources: MetricTemplates (a metric provider and its query) and
//! AlertProviders.

use crate::api::alert_provider::{AlertProvider, AlertProviderKind};
use crate::api::metric_template::{MetricProviderKind, MetricTemplate};
use crate::api::structural::Problem;

/// Checks a MetricTemplate. Paths start at `spec`.
pub fn validate_metric_template(template: &MetricTemplate) -> Vec<Problem> {
    let mut out = Vec::new();
    let provider = &template.spec.provider;
    let kind = match provider.kind() {
        Ok(kind) => Some(kind),
        Err(err) => {
            out.push(Problem::new("spec.provider.type", err.to_string()));
            None
        }
    };
    if template.spec.query.trim().is_empty() {
        out.push(Problem::new("spec.query", "must not be empty"));
    }
    let address = provider.address.as_deref().filter(|a| !a.is_empty());
    if let Some(kind) = kind {
        let needs_address = matches!(
            kind,
            MetricProviderKind::Prometheus
                | MetricProviderKind::Graphite
                | MetricProviderKind::InfluxDb
                | MetricProviderKind::Dynatrace
                | MetricProviderKind::Splunk
        );
        if needs_address && address.is_none() {
            out.push(Problem::new(
                "spec.provider.address",
                format!("required by the {kind} provider"),
            ));
        }
        if kind == MetricProviderKind::CloudWatch
            && provider.region.as_deref().is_none_or(str::is_empty)
        {
            out.push(Problem::new(
                "spec.provider.region",
                "required by the cloudwatch provider",
            ));
        }
        if provider.headers.is_some() && kind != MetricProviderKind::Prometheus {
            out.push(Problem::warning(
                "spec.provider.headers",
                format!("only used by the prometheus provider, ignored by {kind}"),
            ));
        }
    }
    if let Some(address) = address {
        check_url("spec.provider.address", address, &mut out);
    }
    out
}

/// Checks an AlertProvider. Paths start at `spec`.
pub fn validate_alert_provider(provider: &AlertProvider) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &provider.spec;
    if let Err(err) = spec.provider_type.parse::<AlertProviderKind>() {
        out.push(Problem::new("spec.type", err.to_string()));
    }
    match (
        spec.address.as_deref().filter(|a| !a.is_empty()),
        &spec.secret_ref,
    ) {
        (None, None) => out.push(Problem::new("spec", "must set address or secretRef")),
        (Some(address), None) => check_url("spec.address", address, &mut out),
        (Some(_), Some(_)) => out.push(Problem::warning(
            "spec.address",
            "ignored because secretRef is set (the secret's address key is used)",
        )),
        (None, Some(secret)) => {
            if secret.name.is_empty() {
                out.push(Problem::new("spec.secretRef.name", "must not be empty"));
            }
        }
    }
    if let Some(proxy) = spec.proxy.as_deref().filter(|p| !p.is_empty()) {
        check_url("spec.proxy", proxy, &mut out);
    }
    out
}

fn check_url(path: &str, value: &str, out: &mut Vec<Problem>) {
    match url::Url::parse(value) {
        Ok(url) if url.host().is_some() => {}
        _ => out.push(Problem::new(
            path,
            format!("{value:?} is not an absolute URL"),
        )),
    }
}
