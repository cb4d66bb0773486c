#![allow(clippy::unwrap_used)]
use super::*;

fn p(s: &str) -> Provider {
    s.parse().unwrap()
}

#[test]
fn every_crd_enum_value_parses_and_round_trips() {
    for value in CRD_PROVIDER_VALUES {
        let parsed = p(value);
        assert_eq!(parsed.to_string(), *value, "round trip of {value}");
    }
}

#[test]
fn istio() {
    assert_eq!(p("istio"), Provider::Istio);
}
#[test]
fn linkerd() {
    assert_eq!(p("linkerd"), Provider::Linkerd);
}
#[test]
fn smi_versions() {
    assert_eq!(
        p("smi:v1alpha1"),
        Provider::Smi {
            version: SmiVersion::V1alpha1,
            mesh: None
        }
    );
    assert_eq!(
        p("smi:v1alpha2"),
        Provider::Smi {
            version: SmiVersion::V1alpha2,
            mesh: None
        }
    );
    assert_eq!(
        p("smi:v1alpha3"),
        Provider::Smi {
            version: SmiVersion::V1alpha3,
            mesh: None
        }
    );
}
#[test]
fn smi_with_mesh() {
    assert_eq!(
        p("smi:v1alpha3:linkerd"),
        Provider::Smi {
            version: SmiVersion::V1alpha3,
            mesh: Some("linkerd".into())
        }
    );
    assert_eq!(p("smi:v1alpha3:istio").to_string(), "smi:v1alpha3:istio");
}
#[test]
fn gateway_api() {
    assert_eq!(
        p("gatewayapi:v1"),
        Provider::GatewayApi(GatewayApiVersion::V1)
    );
    assert_eq!(p("gatewayapi"), Provider::GatewayApi(GatewayApiVersion::V1));
    assert_eq!(
        p("gatewayapi:v1beta1"),
        Provider::GatewayApi(GatewayApiVersion::V1beta1)
    );
}
#[test]
fn kubernetes() {
    assert_eq!(p("kubernetes"), Provider::Kubernetes);
}
#[test]
fn nginx() {
    assert_eq!(p("nginx"), Provider::Nginx);
}
#[test]
fn contour() {
    assert_eq!(p("contour"), Provider::Contour);
}
#[test]
fn gloo_and_prefixed_gloo() {
    assert_eq!(p("gloo"), Provider::Gloo);
    assert_eq!(p("gloo:edge"), Provider::Gloo);
}
#[test]
fn skipper() {
    assert_eq!(p("skipper"), Provider::Skipper);
}
#[test]
fn traefik() {
    assert_eq!(p("traefik"), Provider::Traefik);
}
#[test]
fn kuma() {
    assert_eq!(p("kuma"), Provider::Kuma);
}
#[test]
fn apisix() {
    assert_eq!(p("apisix"), Provider::Apisix);
}
#[test]
fn appmesh_versions() {
    assert_eq!(p("appmesh"), Provider::AppMesh(AppMeshVersion::V1beta1));
    assert_eq!(
        p("appmesh:v1beta2"),
        Provider::AppMesh(AppMeshVersion::V1beta2)
    );
}
#[test]
fn knative() {
    assert_eq!(p("knative"), Provider::Knative);
}
#[test]
fn osm() {
    assert_eq!(p("osm"), Provider::Osm);
}
fn problems(provider: &str, analysis: serde_json::Value) -> Vec<Problem> {
    let spec: CanarySpec = serde_json::from_value(serde_json::json!({
        "provider": provider,
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898, "appProtocol": "tcp"},
        "analysis": analysis
    }))
    .unwrap();
    let analysis = spec.analysis().unwrap().clone();
    capability_problems(&p(provider), "spec.analysis", &analysis, &spec)
}

fn errors(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

/// App Mesh routes A/B traffic by headers of every string-match kind, and nothing else.
#[test]
fn app_mesh_capabilities() {
    for provider in ["appmesh", "appmesh:v1beta2"] {
        let headers = serde_json::json!({"iterations": 5, "match": [{"headers": {
            "a": {"exact": "1"}, "b": {"prefix": "x"}, "c": {"suffix": "y"}, "d": {"regex": ".*"}
        }}]});
        assert!(
            errors(&problems(provider, headers)).is_empty(),
            "{provider}"
        );
        let query =
            serde_json::json!({"iterations": 5, "match": [{"queryParams": {"q": {"exact": "1"}}}]});
        assert_eq!(
            errors(&problems(provider, query)),
            [format!(
                "spec.analysis.match[0].queryParams: the {provider} provider does not route by query parameters; match on headers instead"
            )]
        );
        let mirror = serde_json::json!({"stepWeight": 10, "mirror": true});
        let found = errors(&problems(provider, mirror));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("cannot mirror traffic for the canary strategy"),
            "{found:?}"
        );
        let affinity =
            serde_json::json!({"stepWeight": 10, "sessionAffinity": {"cookieName": "c"}});
        let found = errors(&problems(provider, affinity));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("does not support session affinity; remove sessionAffinity"),
            "{found:?}"
        );
    }
}

#[test]
fn mirroring_on_nginx_says_what_to_change() {
    let found = errors(&problems(
        "nginx",
        serde_json::json!({"stepWeight": 10, "mirror": true}),
    ));
    assert_eq!(
        found,
        vec![
            "spec.analysis.mirror: the nginx provider cannot mirror traffic for the canary strategy; the canary would never advance. Remove mirror, or use iterations (blue/green) with gatewayapi:v1, gatewayapi:v1beta1, istio"
        ]
    );
    assert!(
        errors(&problems(
            "istio",
            serde_json::json!({"stepWeight": 10, "mirror": true})
        ))
        .is_empty()
    );
}

#[test]
fn match_conditions_per_provider() {
    let ab = |m: serde_json::Value| serde_json::json!({"iterations": 5, "match": m});
    let two_headers = ab(serde_json::json!([
        {"headers": {"x-canary": {"exact": "1"}}},
        {"headers": {"cookie": {"exact": "canary=always"}}}
    ]));
    assert_eq!(
        errors(&problems("nginx", two_headers.clone())),
        vec![
            "spec.analysis.match: the nginx provider routes by one header or cookie (2 conditions given); keep a single header condition"
        ]
    );
    assert!(errors(&problems("gatewayapi:v1", two_headers)).is_empty());
    let prefix = ab(serde_json::json!([{"headers": {"x-canary": {"prefix": "in"}}}]));
    assert_eq!(
        errors(&problems("gatewayapi:v1", prefix.clone())),
        vec![
            "spec.analysis.match[0].headers.x-canary: the gatewayapi:v1 provider matches headers by exact or regex; change prefix to one of them"
        ]
    );
    assert!(errors(&problems("contour", prefix)).is_empty());
    let query = ab(serde_json::json!([{"queryParams": {"canary": {"exact": "1"}}}]));
    assert!(errors(&problems("gatewayapi:v1beta1", query.clone())).is_empty());
    assert_eq!(errors(&problems("gloo", query)).len(), 1);
    let found = errors(&problems(
        "traefik",
        ab(serde_json::json!([{"headers": {"x": {"exact": "1"}}}])),
    ));
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("remove analysis.match (blue/green) or use a provider that supports A/B testing (appmesh, appmesh:v1beta2, contour, gatewayapi:v1, gatewayapi:v1beta1, gloo, istio, nginx)"), "{found:?}");
}

#[test]
fn session_affinity_and_tcp() {
    let sa = serde_json::json!({"stepWeight": 10, "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}});
    assert!(errors(&problems("gatewayapi:v1", sa.clone())).is_empty());
    let beta = problems("gatewayapi:v1beta1", sa.clone());
    assert!(
        beta.iter()
            .any(|p| p.path == "spec.analysis.sessionAffinity.primaryCookieName" && !p.is_error())
    );
    assert_eq!(errors(&problems("linkerd", sa)).len(), 1);
    let tcp = problems("traefik", serde_json::json!({"stepWeight": 10}));
    assert!(
        tcp.iter()
            .any(|p| p.path == "spec.service.appProtocol" && !p.is_error())
    );
    assert!(problems("istio", serde_json::json!({"stepWeight": 10})).is_empty());
}

#[test]
fn kubernetes_forces_blue_green() {
    let found = problems(
        "kubernetes",
        serde_json::json!({"stepWeight": 10, "mirror": true}),
    );
    assert!(errors(&found).is_empty(), "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.message.contains("Progressive traffic is not supported"))
    );
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert_eq!(p(" istio "), Provider::Istio);
}
#[test]
fn unknown_values_are_errors_with_the_accepted_list() {
    for bad in [
        "",
        "isito",
        "smi",
        "smi:v2",
        "smi:v1alpha3:",
        "appmesh:v1",
        "Istio",
    ] {
        let err = bad.parse::<Provider>().unwrap_err();
        assert!(err.to_string().contains("expected one of: apisix"), "{err}");
    }
}

/// A gRPC Canary on `gatewayapi:v1` is routed by a GRPCRoute: what it cannot express is refused
/// with the router's words; `gatewayapi:v1beta1` (an HTTPRoute) is not concerned.
#[test]
fn grpc_route_problems_say_what_to_write() {
    let check = |provider: &str, service_match: serde_json::Value, analysis: serde_json::Value| {
        let spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "provider": provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9999, "appProtocol": "GRPC", "match": service_match},
            "analysis": analysis
        }))
        .unwrap();
        let analysis = spec.analysis().unwrap().clone();
        errors(&capability_problems(
            &p(provider),
            "spec.analysis",
            &analysis,
            &spec,
        ))
    };
    let ok_match = serde_json::json!([{"uri": {"exact": "/podinfo.Echo/Say"}}, {"uri": {"prefix": "/grpc.health.v1.Health/"}}]);
    let ab =
        serde_json::json!({"iterations": 5, "match": [{"headers": {"x-canary": {"exact": "1"}}}]});
    assert!(check("gatewayapi:v1", ok_match.clone(), ab.clone()).is_empty());
    let bad_match =
        serde_json::json!([{"uri": {"regex": "/podinfo.*"}, "method": {"exact": "POST"}}]);
    let bad_analysis = serde_json::json!({"iterations": 5,
        "sessionAffinity": {"cookieName": "c"},
        "match": [{"queryParams": {"a": {"exact": "1"}}, "uri": {"exact": "/podinfo.Echo"}}]});
    assert_eq!(
        check("gatewayapi:v1", bad_match.clone(), bad_analysis.clone()),
        [
            format!("spec.analysis.sessionAffinity: {GRPC_AFFINITY_ERROR}"),
            format!("spec.analysis.match[0].queryParams: {GRPC_QUERY_ERROR}"),
            format!("spec.analysis.match[0].uri: {GRPC_URI_ERROR}"),
            format!("spec.service.match[0].method: {GRPC_METHOD_ERROR}"),
            format!("spec.service.match[0].uri: {GRPC_URI_ERROR}"),
        ]
    );
    assert!(check("gatewayapi:v1beta1", bad_match, bad_analysis).is_empty());
}
