//! Routing decisions of the dev mesh, as pure functions of the Istio objects and the request:
//! which VirtualService applies, which HTTP route matches (uri, headers, cookies via the `cookie`
//! header, method, query parameters), which weighted destination is picked, and whether the
//! request is mirrored. No I/O: randomness comes in as numbers.

use std::time::Duration;

use regex::Regex;
use serde_json::Value;

/// Where a request enters the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Through the ingress gateway (VirtualServices bound to a gateway other than `mesh`).
    Gateway,
    /// From a sidecar inside the mesh (VirtualServices without gateways or bound to `mesh`).
    Mesh,
}

/// The parts of a request routing looks at. Header names are lower case.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    /// Host without port.
    pub host: String,
    pub port: Option<u16>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl RouteRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// A Kubernetes Service by name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub name: String,
    pub namespace: String,
}

/// A route destination: a Service, an optional DestinationRule subset and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub service: ServiceRef,
    pub subset: Option<String>,
    pub port: Option<u16>,
}

/// What the mesh does with a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The VirtualService that routed it (`namespace/name`), None when none applies.
    pub virtual_service: Option<String>,
    pub destination: Destination,
    /// A copy to send, response ignored.
    pub mirror: Option<Destination>,
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
}

/// A route's `retries`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// `retryOn`, split at commas.
    pub retry_on: Vec<String>,
}

/// Istio's `retryOn` when a route has `retries` without it.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

impl Retries {
    fn from_route(route: &Value) -> Option<Self> {
        let r = route.get("retries")?;
        let attempts = u32::try_from(r.get("attempts")?.as_u64()?).ok()?;
        Some(Self {
            attempts,
            per_try_timeout: r
                .get("perTryTimeout")
                .and_then(Value::as_str)
                .and_then(parse_duration),
            retry_on: r
                .get("retryOn")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_RETRY_ON)
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        })
    }

    /// Whether an attempt that answered `code` (None: no answer, the connection failed or was
    /// reset) is retried: `5xx` (any 5xx or no answer), `gateway-error` (502, 503, 504),
    /// `connect-failure`, `reset` and `refused-stream` (no answer), `retriable-4xx` (409) and
    /// status codes listed by number.
    pub fn retries(&self, code: Option<u16>) -> bool {
        self.retry_on.iter().any(|c| match (c.as_str(), code) {
            ("5xx", None) => true,
            ("5xx", Some(code)) => code >= 500,
            ("gateway-error", Some(code)) => matches!(code, 502..=504),
            ("connect-failure" | "reset" | "refused-stream", None) => true,
            ("retriable-4xx", Some(409)) => true,
            (listed, Some(code)) => listed.parse::<u16>().is_ok_and(|l| l == code),
            _ => false,
        })
    }
}

/// Why no destination was chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no route matches {0}")]
    NoRoute(String),
    #[error("{0} is not a cluster service name (<service>.<namespace>[.svc.cluster.local])")]
    NotAClusterHost(String),
}

/// Reads a service host as Istio does, relative to `namespace`: `name`, `name.ns`,
/// `name.ns.svc`, `name.ns.svc.cluster.local`.
pub fn service_of_host(host: &str, namespace: &str) -> Option<ServiceRef> {
    let host = host.trim_end_matches('.');
    let parts: Vec<&str> = host.split('.').collect();
    let (name, ns) = match parts.as_slice() {
        [name] => (*name, namespace),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => (*name, *ns),
        _ => return None,
    };
    if name.is_empty() || ns.is_empty() {
        return None;
    }
    Some(ServiceRef {
        name: name.to_string(),
        namespace: ns.to_string(),
    })
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn namespace_of(vs: &Value) -> &str {
    vs.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

/// Whether a VirtualService applies to a request entering at `entry` for `req.host`.
fn vs_applies(vs: &Value, entry: &Entry, req: &RouteRequest, target: Option<&ServiceRef>) -> bool {
    let gateways = strings(vs.pointer("/spec/gateways"));
    let bound_to_mesh = gateways.is_empty() || gateways.contains(&"mesh");
    let bound_to_gateway = gateways.iter().any(|g| *g != "mesh");
    let ns = namespace_of(vs);
    let hosts = strings(vs.pointer("/spec/hosts"));
    match entry {
        Entry::Mesh => {
            bound_to_mesh
                && target.is_some_and(|t| {
                    hosts
                        .iter()
                        .any(|h| service_of_host(h, ns).as_ref() == Some(t))
                })
        }
        Entry::Gateway => {
            bound_to_gateway
                && hosts.iter().any(|h| {
                    *h == "*"
                        || h.eq_ignore_ascii_case(&req.host)
                        || h.strip_prefix("*.").is_some_and(|suffix| {
                            req.host.len() > suffix.len()
                                && req
                                    .host
                                    .to_ascii_lowercase()
                                    .ends_with(&format!(".{suffix}"))
                        })
                })
        }
    }
}

/// An Istio StringMatch (`exact`, `prefix`, `regex`; regex matches the whole value as RE2 does).
fn string_match(m: &Value, value: Option<&str>, ignore_case: bool) -> bool {
    let Some(value) = value else { return false };
    let fold = |s: &str| {
        if ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    if let Some(exact) = m.get("exact").and_then(Value::as_str) {
        return fold(value) == fold(exact);
    }
    if let Some(prefix) = m.get("prefix").and_then(Value::as_str) {
        return fold(value).starts_with(&fold(prefix));
    }
    if let Some(re) = m.get("regex").and_then(Value::as_str) {
        return Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(value));
    }
    true
}

/// One HTTPMatchRequest: every condition it states must hold.
fn match_request(m: &Value, req: &RouteRequest) -> bool {
    let ignore_case = m
        .get("ignoreUriCase")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(uri) = m.get("uri")
        && !string_match(uri, Some(&req.path), ignore_case)
    {
        return false;
    }
    if let Some(method) = m.get("method")
        && !string_match(method, Some(&req.method), false)
    {
        return false;
    }
    if let Some(authority) = m.get("authority")
        && !string_match(authority, Some(&req.host), false)
    {
        return false;
    }
    if let Some(headers) = m.get("headers").and_then(Value::as_object) {
        for (name, cond) in headers {
            if !string_match(cond, req.header(&name.to_ascii_lowercase()), false) {
                return false;
            }
        }
    }
    if let Some(params) = m.get("queryParams").and_then(Value::as_object) {
        for (name, cond) in params {
            if !string_match(cond, req.query_param(name), false) {
                return false;
            }
        }
    }
    if let Some(port) = m.get("port").and_then(Value::as_u64)
        && req.port.map(u64::from) != Some(port)
    {
        return false;
    }
    true
}

fn route_matches(route: &Value, req: &RouteRequest) -> bool {
    match route.get("match").and_then(Value::as_array) {
        None => true,
        Some(ms) if ms.is_empty() => true,
        Some(ms) => ms.iter().any(|m| match_request(m, req)),
    }
}

fn destination_of(d: &Value, ns: &str) -> Option<Destination> {
    let host = d.get("host").and_then(Value::as_str)?;
    Some(Destination {
        service: service_of_host(host, ns)?,
        subset: d
            .get("subset")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        port: d
            .pointer("/port/number")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok()),
    })
}

/// Picks a weighted destination with `roll` (any number; taken modulo the total weight). A
/// single destination gets everything whatever its weight (Istio assumes 100, and Flagger
/// writes a lone primary with weight 0 during an A/B analysis); otherwise zero-weight
/// destinations never win.
fn pick(routes: &[Value], roll: u64) -> Option<&Value> {
    let weight = |r: &Value| r.get("weight").and_then(Value::as_u64);
    if routes.len() == 1 {
        return routes.first();
    }
    let total: u64 = routes.iter().map(|r| weight(r).unwrap_or(0)).sum();
    if total == 0 {
        return None;
    }
    let mut at = roll % total;
    for r in routes {
        let w = weight(r).unwrap_or(0);
        if at < w {
            return Some(r);
        }
        at -= w;
    }
    None
}

/// Istio's duration strings as Flagger writes them (`30s`, `1.5s`, `500ms`, `1m`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Routes a request: the first VirtualService (in the given order) that applies, its first
/// matching HTTP route, a weighted destination chosen with `weight_roll`, and a mirror when
/// `mirror_roll` (0.0 ≤ x < 100.0) falls under `mirrorPercentage` (100 when absent). Inside the
/// mesh a request no VirtualService routes goes straight to the addressed Service.
pub fn decide(
    virtual_services: &[Value],
    entry: &Entry,
    req: &RouteRequest,
    weight_roll: u64,
    mirror_roll: f64,
) -> Result<Decision, RouteError> {
    let target = match entry {
        Entry::Mesh => Some(
            service_of_host(&req.host, "default")
                .filter(|_| req.host.contains('.'))
                .ok_or_else(|| RouteError::NotAClusterHost(req.host.clone()))?,
        ),
        Entry::Gateway => None,
    };
    let vs = virtual_services
        .iter()
        .find(|vs| vs_applies(vs, entry, req, target.as_ref()));
    let Some(vs) = vs else {
        return match target {
            Some(service) => Ok(Decision {
                virtual_service: None,
                destination: Destination {
                    service,
                    subset: None,
                    port: req.port,
                },
                mirror: None,
                timeout: None,
                retries: None,
            }),
            None => Err(RouteError::NoRoute(format!(
                "host {:?} at the ingress gateway",
                req.host
            ))),
        };
    };
    let ns = namespace_of(vs);
    let vs_name = format!(
        "{ns}/{}",
        vs.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let no_route = || RouteError::NoRoute(format!("{} {} in {vs_name}", req.method, req.path));
    let route = vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .and_then(|http| http.iter().find(|r| route_matches(r, req)))
        .ok_or_else(no_route)?;
    let dests: Vec<Value> = route
        .get("route")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chosen = pick(&dests, weight_roll).ok_or_else(no_route)?;
    let mut destination = chosen
        .get("destination")
        .and_then(|d| destination_of(d, ns))
        .ok_or_else(no_route)?;
    if destination.port.is_none() {
        destination.port = req.port;
    }
    let mirror = route
        .get("mirror")
        .and_then(|m| destination_of(m, ns))
        .filter(|_| {
            let pct = route
                .pointer("/mirrorPercentage/value")
                .and_then(Value::as_f64)
                .unwrap_or(100.0);
            mirror_roll < pct
        })
        .map(|mut m| {
            if m.port.is_none() {
                m.port = destination.port;
            }
            m
        });
    Ok(Decision {
        virtual_service: Some(vs_name),
        destination,
        mirror,
        timeout: route
            .get("timeout")
            .and_then(Value::as_str)
            .and_then(parse_duration),
        retries: Retries::from_route(route),
    })
}

/// The pod labels a DestinationRule subset adds to the Service's selector (empty when the
/// subset or the rule is unknown). `rules` are DestinationRules of any namespace.
pub fn subset_labels(rules: &[Value], dest: &Destination) -> Vec<(String, String)> {
    let Some(subset) = &dest.subset else {
        return Vec::new();
    };
    rules
        .iter()
        .filter(|dr| {
            dr.pointer("/spec/host")
                .and_then(Value::as_str)
                .and_then(|h| service_of_host(h, namespace_of(dr)))
                .as_ref()
                == Some(&dest.service)
        })
        .filter_map(|dr| dr.pointer("/spec/subsets").and_then(Value::as_array))
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(subset))
        .and_then(|s| s.get("labels").and_then(Value::as_object))
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The VirtualService Flagger's Istio router renders for an A/B canary exposed on a gateway.
    fn ab_vs() -> Value {
        json!({
            "metadata": {"name": "frontend", "namespace": "prod"},
            "spec": {
                "gateways": ["istio-system/public-gateway"],
                "hosts": ["*"],
                "http": [
                    {"match": [{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}],
                     "route": [{"destination": {"host": "frontend-primary"}, "weight": 0},
                               {"destination": {"host": "frontend-canary"}, "weight": 100}]},
                    {"match": [{"headers": {"cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}}],
                     "route": [{"destination": {"host": "frontend-primary"}, "weight": 0},
                               {"destination": {"host": "frontend-canary"}, "weight": 100}]},
                    {"route": [{"destination": {"host": "frontend-primary"}, "weight": 0}]}
                ]
            }
        })
    }

    fn weighted_vs(canary: u64) -> Value {
        json!({
            "metadata": {"name": "backend", "namespace": "prod"},
            "spec": {
                "hosts": ["backend"],
                "http": [{
                    "timeout": "15s",
                    "route": [
                        {"destination": {"host": "backend-primary", "port": {"number": 9898}}, "weight": 100 - canary},
                        {"destination": {"host": "backend-canary", "port": {"number": 9898}}, "weight": canary}
                    ]
                }]
            }
        })
    }

    fn req(host: &str, headers: &[(&str, &str)]) -> RouteRequest {
        RouteRequest {
            host: host.into(),
            port: Some(9898),
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn dest_name(d: &Result<Decision, RouteError>) -> String {
        d.as_ref()
            .map(|d| d.destination.service.name.clone())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn cluster_hosts() {
        let s = |n: &str, ns: &str| {
            Some(ServiceRef {
                name: n.into(),
                namespace: ns.into(),
            })
        };
        assert_eq!(service_of_host("backend", "prod"), s("backend", "prod"));
        assert_eq!(
            service_of_host("backend.test", "prod"),
            s("backend", "test")
        );
        assert_eq!(
            service_of_host("backend.test.svc.cluster.local", "prod"),
            s("backend", "test")
        );
        assert_eq!(
            service_of_host("backend.test.svc", "prod"),
            s("backend", "test")
        );
        assert_eq!(service_of_host("app.example.com", "prod"), None);
    }

    #[test]
    fn weights_split_traffic_exactly_over_the_roll_range() {
        let vss = [weighted_vs(30)];
        let canary = (0..100)
            .filter(|roll| {
                dest_name(&decide(
                    &vss,
                    &Entry::Mesh,
                    &req("backend.prod", &[]),
                    *roll,
                    0.0,
                )) == "backend-canary"
            })
            .count();
        assert_eq!(canary, 30);
        let d = decide(&vss, &Entry::Mesh, &req("backend.prod", &[]), 0, 0.0);
        assert_eq!(
            d.as_ref().ok().and_then(|d| d.timeout),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            d.as_ref()
                .ok()
                .and_then(|d| d.virtual_service.clone())
                .as_deref(),
            Some("prod/backend")
        );
    }

    #[test]
    fn zero_weight_never_wins() {
        let vss = [weighted_vs(0)];
        for roll in 0..200 {
            assert_eq!(
                dest_name(&decide(
                    &vss,
                    &Entry::Mesh,
                    &req("backend.prod.svc.cluster.local", &[]),
                    roll,
                    0.0
                )),
                "backend-primary"
            );
        }
    }

    #[test]
    fn ab_matches_on_user_agent_and_cookie() {
        let vss = [ab_vs()];
        let at = |h: &[(&str, &str)]| {
            dest_name(&decide(&vss, &Entry::Gateway, &req("127.0.0.1", h), 7, 0.0))
        };
        assert_eq!(
            at(&[(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
            )]),
            "frontend-canary"
        );
        assert_eq!(at(&[("cookie", "a=b;type=insider;c=d")]), "frontend-canary");
        // The seed's regex, matched in full as Envoy does, wants no space after `;`.
        assert_eq!(at(&[("cookie", "a=b; type=insider")]), "frontend-primary");
        assert_eq!(at(&[("cookie", "type=insider")]), "frontend-canary");
        assert_eq!(at(&[("cookie", "type=outsider")]), "frontend-primary");
        assert_eq!(at(&[("user-agent", "curl/8.0")]), "frontend-primary");
        assert_eq!(at(&[]), "frontend-primary");
    }

    #[test]
    fn gateway_and_mesh_bindings_are_kept_apart() {
        // The gateway-bound frontend VS does not route mesh traffic for `frontend.prod`, which
        // goes straight to the Service; the mesh-only backend VS is not served at the gateway.
        let vss = [ab_vs(), weighted_vs(10)];
        let d = decide(&vss, &Entry::Mesh, &req("frontend.prod", &[]), 0, 0.0);
        assert_eq!(dest_name(&d), "frontend");
        assert_eq!(d.ok().and_then(|d| d.virtual_service), None);
        let only_backend = [weighted_vs(10)];
        assert_eq!(
            decide(
                &only_backend,
                &Entry::Gateway,
                &req("127.0.0.1", &[]),
                0,
                0.0
            ),
            Err(RouteError::NoRoute(
                "host \"127.0.0.1\" at the ingress gateway".into()
            ))
        );
        assert_eq!(
            decide(&only_backend, &Entry::Mesh, &req("example", &[]), 0, 0.0),
            Err(RouteError::NotAClusterHost("example".into()))
        );
    }

    #[test]
    fn uri_matches_and_fallthrough() {
        let vs = json!({
            "metadata": {"name": "app", "namespace": "test"},
            "spec": {"hosts": ["app.test.svc.cluster.local"], "http": [
                {"match": [{"uri": {"prefix": "/api"}, "method": {"exact": "POST"}}],
                 "route": [{"destination": {"host": "api"}}]},
                {"match": [{"uri": {"exact": "/"}}], "route": [{"destination": {"host": "web"}}]}
            ]}
        });
        let vss = [vs];
        let mut r = req("app.test", &[]);
        r.method = "POST".into();
        r.path = "/api/v1".into();
        assert_eq!(dest_name(&decide(&vss, &Entry::Mesh, &r, 0, 0.0)), "api");
        r.method = "GET".into();
        assert!(matches!(
            decide(&vss, &Entry::Mesh, &r, 0, 0.0),
            Err(RouteError::NoRoute(_))
        ));
        r.path = "/".into();
        assert_eq!(dest_name(&decide(&vss, &Entry::Mesh, &r, 0, 0.0)), "web");
    }

    #[test]
    fn mirror_follows_mirror_percentage() {
        let vs = json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"hosts": ["podinfo"], "http": [{
                "mirror": {"host": "podinfo-canary"},
                "mirrorPercentage": {"value": 25.0},
                "route": [{"destination": {"host": "podinfo-primary"}, "weight": 100},
                          {"destination": {"host": "podinfo-canary"}, "weight": 0}]
            }]}
        });
        let vss = [vs];
        let mirrored = |roll: f64| {
            decide(&vss, &Entry::Mesh, &req("podinfo.test", &[]), 0, roll)
                .ok()
                .and_then(|d| d.mirror)
                .map(|m| (m.service.name, m.port))
        };
        assert_eq!(mirrored(10.0), Some(("podinfo-canary".into(), Some(9898))));
        assert_eq!(mirrored(25.0), None);
    }

    #[test]
    fn subsets_add_labels() {
        let dr = json!({
            "metadata": {"name": "reviews", "namespace": "test"},
            "spec": {"host": "reviews", "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}}
            ]}
        });
        let dest = Destination {
            service: ServiceRef {
                name: "reviews".into(),
                namespace: "test".into(),
            },
            subset: Some("v2".into()),
            port: None,
        };
        assert_eq!(
            subset_labels(&[dr], &dest),
            vec![("version".to_string(), "v2".to_string())]
        );
    }

    #[test]
    fn retries_follow_retry_on() {
        let route = |retry_on: Option<&str>| {
            let mut r = json!({"retries": {"attempts": 2, "perTryTimeout": "1s"}});
            if let Some(on) = retry_on {
                r["retries"]["retryOn"] = json!(on);
            }
            Retries::from_route(&r)
        };
        let gw = route(Some("gateway-error,connect-failure")).unwrap_or_else(|| unreachable!());
        assert_eq!(gw.attempts, 2);
        assert_eq!(gw.per_try_timeout, Some(Duration::from_secs(1)));
        assert!(gw.retries(Some(503)) && gw.retries(None));
        assert!(!gw.retries(Some(500)) && !gw.retries(Some(200)));
        let all = route(Some("5xx,409")).unwrap_or_else(|| unreachable!());
        assert!(all.retries(Some(500)) && all.retries(Some(409)) && !all.retries(Some(404)));
        let default = route(None).unwrap_or_else(|| unreachable!());
        assert!(default.retries(None) && !default.retries(Some(503)));
        assert_eq!(Retries::from_route(&json!({})), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("soon"), None);
    }
}
