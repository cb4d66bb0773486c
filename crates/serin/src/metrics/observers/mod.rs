//! Built-in `request-success-rate` and `request-duration` queries, one file per observer, and
//! the choice of observer from the Canary's provider (Flagger's `pkg/metrics/observers`).
//!
//! The query texts are Flagger's, whitespace-collapsed (Flagger collapses whitespace before
//! sending them, so the requests Prometheus receives are identical).

use std::time::Duration;

use crate::api::provider::Provider;

use super::template::{self, QueryModel, TemplateError};

pub mod apisix;
pub mod appmesh;
pub mod contour;
pub mod gloo;
pub mod http;
pub mod istio;
pub mod knative;
pub mod kuma;
pub mod linkerd;
pub mod nginx;
pub mod osm;
pub mod skipper;
pub mod traefik;

/// Suffix Flagger appends to the metrics provider when the target is a plain `Service`.
pub const SERVICE_SUFFIX: &str = ":service";

/// Unit of the number a request-duration query returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationUnit {
    Milliseconds,
    Seconds,
}

/// The two built-in queries of an observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinQueries {
    /// Percentage of non-5xx requests (0–100).
    pub request_success_rate: &'static str,
    /// Request latency (P99 for most observers, an average for NGINX and Skipper).
    pub request_duration: &'static str,
    pub duration_unit: DurationUnit,
}

/// The observers Flagger ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObserverKind {
    Istio,
    Linkerd,
    AppMesh,
    Nginx,
    Contour,
    Gloo,
    Traefik,
    Skipper,
    Kuma,
    Osm,
    Apisix,
    Knative,
    /// Generic application metrics (`http_request_duration_seconds`): `kubernetes`, Gateway API.
    Http,
}

impl ObserverKind {
    pub const ALL: [ObserverKind; 13] = [
        ObserverKind::Istio,
        ObserverKind::Linkerd,
        ObserverKind::AppMesh,
        ObserverKind::Nginx,
        ObserverKind::Contour,
        ObserverKind::Gloo,
        ObserverKind::Traefik,
        ObserverKind::Skipper,
        ObserverKind::Kuma,
        ObserverKind::Osm,
        ObserverKind::Apisix,
        ObserverKind::Knative,
        ObserverKind::Http,
    ];

    /// The observer of a routing provider.
    pub fn for_provider(provider: &Provider) -> ObserverKind {
        match provider {
            Provider::Istio => ObserverKind::Istio,
            Provider::Linkerd => ObserverKind::Linkerd,
            // Flagger always uses the Istio queries for SMI; Serin honours the mesh named in
            // `smi:<version>:<mesh>` when it has an observer for it.
            Provider::Smi { mesh, .. } => match mesh.as_deref() {
                Some("linkerd") => ObserverKind::Linkerd,
                Some("osm") => ObserverKind::Osm,
                _ => ObserverKind::Istio,
            },
            Provider::Osm => ObserverKind::Osm,
            Provider::AppMesh(_) => ObserverKind::AppMesh,
            Provider::Contour => ObserverKind::Contour,
            Provider::Gloo => ObserverKind::Gloo,
            Provider::Nginx => ObserverKind::Nginx,
            Provider::Skipper => ObserverKind::Skipper,
            Provider::Traefik => ObserverKind::Traefik,
            Provider::Kuma => ObserverKind::Kuma,
            Provider::Apisix => ObserverKind::Apisix,
            Provider::GatewayApi(_) => ObserverKind::Http,
            Provider::Knative => ObserverKind::Knative,
            Provider::Kubernetes => ObserverKind::Http,
        }
    }

    /// The observer for a metrics-provider string as Flagger builds it (see
    /// [`metrics_provider_name`]). A `:service` suffix selects the same observer as the provider
    /// without it (Flagger falls back to Istio there for most providers, a bug); unknown values
    /// select Istio, as in Flagger.
    pub fn for_name(metrics_provider: &str) -> ObserverKind {
        let base = metrics_provider
            .strip_suffix(SERVICE_SUFFIX)
            .unwrap_or(metrics_provider);
        match base.parse::<Provider>() {
            Ok(provider) => ObserverKind::for_provider(&provider),
            Err(_) if base.starts_with("appmesh") => ObserverKind::AppMesh,
            Err(_) if base.starts_with("gatewayapi") => ObserverKind::Http,
            Err(_) => ObserverKind::Istio,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObserverKind::Istio => "istio",
            ObserverKind::Linkerd => "linkerd",
            ObserverKind::AppMesh => "appmesh",
            ObserverKind::Nginx => "nginx",
            ObserverKind::Contour => "contour",
            ObserverKind::Gloo => "gloo",
            ObserverKind::Traefik => "traefik",
            ObserverKind::Skipper => "skipper",
            ObserverKind::Kuma => "kuma",
            ObserverKind::Osm => "osm",
            ObserverKind::Apisix => "apisix",
            ObserverKind::Knative => "knative",
            ObserverKind::Http => "http",
        }
    }

    pub fn queries(self) -> BuiltinQueries {
        match self {
            ObserverKind::Istio => istio::QUERIES,
            ObserverKind::Linkerd => linkerd::QUERIES,
            ObserverKind::AppMesh => appmesh::QUERIES,
            ObserverKind::Nginx => nginx::QUERIES,
            ObserverKind::Contour => contour::QUERIES,
            ObserverKind::Gloo => gloo::QUERIES,
            ObserverKind::Traefik => traefik::QUERIES,
            ObserverKind::Skipper => skipper::QUERIES,
            ObserverKind::Kuma => kuma::QUERIES,
            ObserverKind::Osm => osm::QUERIES,
            ObserverKind::Apisix => apisix::QUERIES,
            ObserverKind::Knative => knative::QUERIES,
            ObserverKind::Http => http::QUERIES,
        }
    }

    /// Renders the success-rate query (whitespace-collapsed, ready to send).
    pub fn request_success_rate_query(self, model: &QueryModel) -> Result<String, TemplateError> {
        self.render(self.queries().request_success_rate, model)
    }

    /// Renders the request-duration query (whitespace-collapsed, ready to send).
    pub fn request_duration_query(self, model: &QueryModel) -> Result<String, TemplateError> {
        self.render(self.queries().request_duration, model)
    }

    /// Converts the number a request-duration query returned into a duration with millisecond
    /// resolution (truncating, as Flagger does). Negative values become zero.
    pub fn duration_from_value(self, value: f64) -> Duration {
        let ms = match self.queries().duration_unit {
            DurationUnit::Milliseconds => value,
            DurationUnit::Seconds => value * 1000.0,
        };
        // Flagger truncates to whole milliseconds. Round away floating-point noise first
        // (histogram_quantile over rates yields e.g. 749.9999999 for 750), so that noise does
        // not cost a whole millisecond; real fractions (749.6) still truncate as in Flagger.
        let ms = ((ms * 1e6).round() / 1e6).trunc();
        if ms.is_finite() && ms > 0.0 {
            Duration::from_millis(ms as u64)
        } else {
            Duration::ZERO
        }
    }

    fn render(self, query: &str, model: &QueryModel) -> Result<String, TemplateError> {
        let rendered = if self == ObserverKind::Skipper {
            template::render(query, &skipper_model(model))?
        } else {
            template::render(query, model)?
        };
        Ok(template::collapse_whitespace(&rendered))
    }
}

/// Skipper's pre-processing: `\W` → `_` in the names it interpolates into route names.
fn skipper_model(model: &QueryModel) -> QueryModel {
    QueryModel {
        name: template::skipper_sanitize(&model.name),
        namespace: template::skipper_sanitize(&model.namespace),
        target: template::skipper_sanitize(&model.target),
        service: template::skipper_sanitize(&model.service),
        ingress: template::skipper_sanitize(&model.ingress),
        ..model.clone()
    }
}

/// The metrics-provider string Flagger derives for the built-in checks: the global mesh
/// provider, overridden by `spec.provider` unless the global provider mentions `linkerd`;
/// `:service` appended for plain-Service targets. It names the provider in the "no values found"
/// message.
pub fn metrics_provider_name(
    global_mesh_provider: &str,
    canary_provider: Option<&str>,
    target_kind: &str,
) -> String {
    let mut provider = if global_mesh_provider.contains("crossover") {
        "crossover".to_string()
    } else {
        global_mesh_provider.to_string()
    };
    if let Some(p) = canary_provider.filter(|p| !p.is_empty()) {
        provider = p.to_string();
        if global_mesh_provider.contains("linkerd") {
            provider = "linkerd".to_string();
        }
    }
    if target_kind == "Service" {
        provider.push_str(SERVICE_SUFFIX);
    }
    provider
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn durations_truncate_to_milliseconds_without_losing_one_to_float_noise() {
        let istio = ObserverKind::Istio;
        assert_eq!(
            istio.duration_from_value(749.999_999_999_9),
            Duration::from_millis(750)
        );
        assert_eq!(istio.duration_from_value(749.6), Duration::from_millis(749));
        assert_eq!(
            istio.duration_from_value(1515.0),
            Duration::from_millis(1515)
        );
        assert_eq!(istio.duration_from_value(f64::NAN), Duration::ZERO);
        assert_eq!(istio.duration_from_value(-3.0), Duration::ZERO);
    }

    fn model() -> QueryModel {
        QueryModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo".into(),
            ingress: "podinfo".into(),
            route: "podinfo".into(),
            interval: "1m".into(),
            variables: BTreeMap::new(),
        }
    }

    /// Flagger's built-in queries (`pkg/metrics/observers/<provider>.go`), with
    /// `{{ namespace }}` = test, `{{ target }}` (and service,
    /// ingress, route) = podinfo, `{{ interval }}` = 1m.
    fn expected(kind: ObserverKind) -> (&'static str, &'static str) {
        match kind {
            ObserverKind::Istio => (
                r#"sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo", response_code!~"5.*" }[1m] ) ) / sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Linkerd => (
                r#"sum( rate( response_total{ namespace="test", deployment=~"podinfo", classification!="failure", direction="inbound" }[1m] ) ) / sum( rate( response_total{ namespace="test", deployment=~"podinfo", direction="inbound" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( response_latency_ms_bucket{ namespace="test", deployment=~"podinfo", direction="inbound" }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::AppMesh => (
                r#"sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Nginx => (
                r#"sum( rate( nginx_ingress_controller_requests{ namespace="test", ingress="podinfo", canary!="", status!~"5.*" }[1m] ) ) / sum( rate( nginx_ingress_controller_requests{ namespace="test", ingress="podinfo", canary!="" }[1m] ) ) * 100"#,
                r#"sum( rate( nginx_ingress_controller_response_duration_seconds_sum{ namespace="test", ingress="podinfo", canary!="" }[1m] ) ) / sum( rate( nginx_ingress_controller_response_duration_seconds_count{ namespace="test", ingress="podinfo", canary!="" }[1m] ) ) * 1000"#,
            ),
            ObserverKind::Contour => (
                r#"sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Gloo => (
                r#"sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"test-podinfo-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Traefik => (
                r#"sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd", code!~"5..", le="+Inf" }[1m] ) ) / sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd", le="+Inf" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"test-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd" }[1m] ) ) by (le) ) * 1000"#,
            ),
            ObserverKind::Skipper => (
                r#"sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_test__podinfo_canary__.*__podinfo_canary(_[0-9]+)?",code!~"5..",le="+Inf"}[1m])) / sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_test__podinfo_canary__.*__podinfo_canary(_[0-9]+)?",le="+Inf"}[1m])) * 100"#,
                r#"sum(rate(skipper_serve_route_duration_seconds_sum{route=~"kube(ew)?_test__podinfo_canary__.*__podinfo_canary(_[0-9]+)?"}[1m])) / sum(rate(skipper_serve_route_duration_seconds_count{route=~"kube(ew)?_test__podinfo_canary__.*__podinfo_canary(_[0-9]+)?"}[1m])) * 1000"#,
            ),
            ObserverKind::Kuma => (
                r#"sum( rate( envoy_cluster_upstream_rq{ service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+", }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+", }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Osm => (
                r#"sum( rate( osm_request_total{ destination_namespace="test", destination_kind="Deployment", destination_name="podinfo", response_code!~"5.*" }[1m] ) ) / sum( rate( osm_request_total{ destination_namespace="test", destination_kind="Deployment", destination_name="podinfo" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( osm_request_duration_ms_bucket{ destination_namespace="test", destination_kind="Deployment", destination_name="podinfo" }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Apisix => (
                r#"sum( rate( apisix_http_status{ route=~"test_podinfo-podinfo-canary_.+", code!~"5.." }[1m] ) ) / sum( rate( apisix_http_status{ route=~"test_podinfo-podinfo-canary_.+" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( apisix_http_latency_bucket{ type=~"request", route=~"test_podinfo-podinfo-canary_.+" }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Knative => (
                r#"sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test/podinfo", envoy_response_code!~"5.*" }[1m] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"test/podinfo", }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"test/podinfo", }[1m] ) ) by (le) )"#,
            ),
            ObserverKind::Http => (
                r#"sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*" }[1m] ) ) / sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) * 100"#,
                r#"histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[1m] ) ) by (le) )"#,
            ),
        }
    }

    #[test]
    fn every_observer_renders_flaggers_queries() {
        for kind in ObserverKind::ALL {
            let (success, duration) = expected(kind);
            assert_eq!(
                kind.request_success_rate_query(&model()).unwrap(),
                success,
                "{kind:?} success rate"
            );
            assert_eq!(
                kind.request_duration_query(&model()).unwrap(),
                duration,
                "{kind:?} duration"
            );
        }
    }

    #[test]
    fn model_values_land_in_the_right_places() {
        let m = QueryModel {
            name: "n".into(),
            namespace: "ns".into(),
            target: "tgt".into(),
            service: "svc".into(),
            ingress: "ing".into(),
            route: "rt".into(),
            interval: "30s".into(),
            variables: BTreeMap::new(),
        };
        let q = ObserverKind::Contour
            .request_success_rate_query(&m)
            .unwrap();
        assert!(q.contains(r#"envoy_cluster_name=~"ns_svc-canary_"#), "{q}");
        assert!(q.contains("[30s]"), "{q}");
        let q = ObserverKind::Nginx.request_duration_query(&m).unwrap();
        assert!(q.contains(r#"ingress="ing""#), "{q}");
        let q = ObserverKind::Apisix.request_duration_query(&m).unwrap();
        assert!(q.contains(r#"route=~"ns_rt-tgt-canary_.+""#), "{q}");
        let q = ObserverKind::Knative.request_duration_query(&m).unwrap();
        assert!(q.contains(r#"envoy_cluster_name=~"ns/rt""#), "{q}");
    }

    #[test]
    fn skipper_mangles_non_word_characters() {
        let m = QueryModel {
            namespace: "my-ns".into(),
            ingress: "web.ingress".into(),
            service: "web-svc".into(),
            interval: "1m".into(),
            ..model()
        };
        let q = ObserverKind::Skipper
            .request_success_rate_query(&m)
            .unwrap();
        assert!(
            q.starts_with(r#"sum(rate(skipper_response_duration_seconds_bucket{route=~"kube(ew)?_my_ns__web_ingress_canary__.*__web_svc_canary(_[0-9]+)?""#),
            "{q}"
        );
    }

    #[test]
    fn provider_to_observer_mapping() {
        let cases = [
            ("istio", ObserverKind::Istio),
            ("", ObserverKind::Istio),
            ("somethingelse", ObserverKind::Istio),
            ("linkerd", ObserverKind::Linkerd),
            ("smi:v1alpha1", ObserverKind::Istio),
            ("smi:v1alpha3:linkerd", ObserverKind::Linkerd),
            ("smi:v1alpha2:osm", ObserverKind::Osm),
            ("osm", ObserverKind::Osm),
            ("appmesh", ObserverKind::AppMesh),
            ("appmesh:v1beta2", ObserverKind::AppMesh),
            ("contour", ObserverKind::Contour),
            ("gloo", ObserverKind::Gloo),
            ("gloo:edge", ObserverKind::Gloo),
            ("nginx", ObserverKind::Nginx),
            ("skipper", ObserverKind::Skipper),
            ("traefik", ObserverKind::Traefik),
            ("kuma", ObserverKind::Kuma),
            ("apisix", ObserverKind::Apisix),
            ("gatewayapi:v1", ObserverKind::Http),
            ("gatewayapi:v1beta1", ObserverKind::Http),
            ("knative", ObserverKind::Knative),
            ("kubernetes", ObserverKind::Http),
            // `:service` keeps the provider's observer.
            ("nginx:service", ObserverKind::Nginx),
            ("kubernetes:service", ObserverKind::Http),
            ("appmesh:v1beta2:service", ObserverKind::AppMesh),
            ("gatewayapi:v1:service", ObserverKind::Http),
            ("istio:service", ObserverKind::Istio),
        ];
        for (name, kind) in cases {
            assert_eq!(ObserverKind::for_name(name), kind, "{name}");
        }
    }

    #[test]
    fn metrics_provider_name_rules() {
        assert_eq!(metrics_provider_name("istio", None, "Deployment"), "istio");
        assert_eq!(
            metrics_provider_name("istio", Some("nginx"), "Deployment"),
            "nginx"
        );
        assert_eq!(
            metrics_provider_name("istio", Some(""), "Deployment"),
            "istio"
        );
        // Linkerd as the global provider wins over spec.provider.
        assert_eq!(
            metrics_provider_name("linkerd", Some("nginx"), "Deployment"),
            "linkerd"
        );
        assert_eq!(
            metrics_provider_name("smi:v1alpha3:linkerd", Some("kubernetes"), "Service"),
            "linkerd:service"
        );
        assert_eq!(
            metrics_provider_name("kubernetes", None, "Service"),
            "kubernetes:service"
        );
        assert_eq!(
            metrics_provider_name("smi:crossover", None, "Deployment"),
            "crossover"
        );
    }

    #[test]
    fn durations_truncate_to_milliseconds() {
        assert_eq!(
            ObserverKind::Istio.duration_from_value(1515.9),
            Duration::from_millis(1515)
        );
        assert_eq!(
            ObserverKind::Http.duration_from_value(0.2509),
            Duration::from_millis(250)
        );
        assert_eq!(
            ObserverKind::Istio.duration_from_value(-3.0),
            Duration::ZERO
        );
    }
}
