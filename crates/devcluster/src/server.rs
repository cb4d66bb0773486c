//! HTTP front: authentication, routing of Kubernetes URLs, fault hooks, and the request handlers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch as tokio_watch;

use crate::discovery;
use crate::faults::Faults;
use crate::ops::{self, DeleteOpts, Deleted, Sub, WriteOpts};
use crate::patch::PatchType;
use crate::registry::ResourceDef;
use crate::requests::{RecordedRequest, RequestLog};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::simulator::Simulator;
use crate::status::{self, ApiError};
use crate::store::{Store, name_of, namespace_of, uid_of};
use crate::table::{self, View};
use crate::watch::{self, WatchReq};

/// State shared by the server, the simulator and the garbage collector of one dev cluster.
pub struct Shared {
    pub store: Mutex<Store>,
    pub token: String,
    pub faults: Arc<Faults>,
    pub requests: RequestLog,
    pub sim: Arc<Simulator>,
    pub shutdown: tokio_watch::Receiver<bool>,
    pub bookmark_interval: Duration,
    pub max_watch: Option<Duration>,
    pub addr: SocketAddr,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    // Straight into bytes: `Value`'s `Display` goes through the formatting machinery and grows
    // its string from nothing (4-5 % of the benchmark process's CPU in a profile). Writing a
    // `Value` cannot fail: its keys are strings.
    let mut body = Vec::with_capacity(4096);
    let _ = serde_json::to_writer(&mut body, v);
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response<Body> {
    match dispatch(shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.token)
}

/// A request addressed to a resource.
struct Target {
    def: Arc<ResourceDef>,
    version: String,
    ns: Option<String>,
    name: Option<String>,
    sub: Sub,
}

fn resolve(shared: &Shared, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let st = shared.lock();
    let reg = &st.registry;
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if reg.lookup(group, version, plural).is_some() => {
            if !reg
                .lookup(group, version, plural)
                .is_some_and(|d| d.namespaced)
            {
                return Err(ApiError::no_resource());
            }
            let mut r = vec![*plural];
            r.extend_from_slice(tail);
            (Some((*ns).to_string()), r)
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_resource()),
    };
    let def = reg
        .lookup(group, version, plural)
        .ok_or_else(ApiError::no_resource)?;
    if def.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_resource());
    }
    let sub = match sub {
        None => Sub::Main,
        Some("status") if def.status => Sub::Status,
        Some("scale") if def.scale.is_some() => Sub::Scale,
        Some(_) => return Err(ApiError::no_resource()),
    };
    Ok(Target {
        def,
        version: version.to_string(),
        ns,
        name: name.map(str::to_string),
        sub,
    })
}

async fn dispatch(shared: Arc<Shared>, req: Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/livez") {
        return Ok(Response::new(Body::from("ok")));
    }
    if !authorized(&shared, req.headers()) {
        return Err(ApiError::unauthorized());
    }
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_get = req.method() == Method::GET;
    let doc = |v: Option<Value>| -> Result<Response<Body>, ApiError> {
        if !is_get {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        v.map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::no_resource)
    };
    match segs.as_slice() {
        ["version"] => doc(Some(discovery::version())),
        ["api"] => doc(Some(discovery::core_versions(&shared.addr.to_string()))),
        ["apis"] => doc(Some(discovery::group_list(&shared.lock().registry))),
        ["openapi", "v3"] => doc(Some(discovery::openapi_index(&shared.lock().registry))),
        ["openapi", "v3", "api", "v1"] => {
            doc(discovery::openapi_gv(&shared.lock().registry, "", "v1"))
        }
        ["openapi", "v3", "apis", g, v] => {
            doc(discovery::openapi_gv(&shared.lock().registry, g, v))
        }
        ["api", "v1"] => doc(discovery::resource_list(&shared.lock().registry, "", "v1")),
        ["apis", g] => doc(discovery::group(&shared.lock().registry, g)),
        ["apis", g, v] => doc(discovery::resource_list(&shared.lock().registry, g, v)),
        ["api", "v1", rest @ ..] => {
            let t = resolve(&shared, "", "v1", rest)?;
            resource(shared, t, req, query).await
        }
        ["apis", g, v, rest @ ..] => {
            let t = resolve(&shared, g, v, rest)?;
            resource(shared, t, req, query).await
        }
        _ => Err(ApiError::no_resource()),
    }
}

fn verb_of(method: &Method, t: &Target, query: &HashMap<String, String>) -> &'static str {
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    }
}

fn parse_body(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if crate::protobuf::is_protobuf(content_type) {
        return crate::protobuf::decode(bytes).map_err(|e| match e {
            crate::protobuf::PbError::UnknownKind(_) => ApiError::unsupported_media(e.to_string()),
            crate::protobuf::PbError::Table(_) => ApiError::internal(e.to_string()),
            _ => ApiError::bad_request(e.to_string()),
        });
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let json_err = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if content_type.contains("yaml") {
        let text = std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    Err(ApiError::bad_request(format!(
        "error decoding JSON body: {json_err}"
    )))
}

fn write_opts(query: &HashMap<String, String>, headers: &HeaderMap) -> WriteOpts {
    WriteOpts {
        // Every client request has one, empty when the client sent none.
        user_agent: Some(
            headers
                .get(header::USER_AGENT)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        ),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        field_manager: query.get("fieldManager").cloned(),
        force: query.get("force").is_some_and(|f| f == "true"),
        strict: query.get("fieldValidation").is_some_and(|f| f == "Strict"),
        ..WriteOpts::default()
    }
}

fn selectors(
    def: &ResourceDef,
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(
        query.get("fieldSelector").map_or("", String::as_str),
        &def.key(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
}

fn encode_continue(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("continue key is not valid");
    if !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect();
    String::from_utf8(bytes.map_err(|_| invalid())?).map_err(|_| invalid())
}

fn render_one<'a>(t: &Target, view: View, obj: &'a Value) -> Cow<'a, Value> {
    table::one(&t.def, &t.version, view, obj)
}

/// The reply to a write: the object as served, or the Scale a scale write returns as is.
fn write_reply(t: &Target, code: StatusCode, out: &Value) -> Response<Body> {
    if t.sub == Sub::Scale {
        json_response(code, out)
    } else {
        json_response(code, &render_one(t, View::Full, out))
    }
}

fn render_list(t: &Target, view: View, items: &[Value], meta: Value) -> Value {
    match view {
        View::Full => json!({
            "kind": format!("{}List", t.def.kind),
            "apiVersion": t.def.api_version(&t.version),
            "metadata": meta,
            "items": items.iter().map(|o| table::versioned(&t.def, &t.version, o).into_owned()).collect::<Vec<_>>(),
        }),
        View::Meta => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": items.iter().map(table::partial_metadata).collect::<Vec<_>>(),
        }),
        View::Table(inc) => table::table(&t.def, &t.version, items, meta, inc),
    }
}

async fn resource(
    shared: Arc<Shared>,
    t: Target,
    req: Request,
    query: HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let verb = verb_of(&method, &t, &query);
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(err) = shared.faults.decide(verb) {
        return Err(err);
    }
    let headers = req.headers().clone();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json");
    let view = View::from_accept(accept, query.get("includeObject").map(String::as_str));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    shared.requests.record(|| RecordedRequest {
        verb: verb.to_string(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        content_type: content_type.clone(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: if shared.requests.keeps_bodies() {
            parse_body(&body, &content_type).unwrap_or(Value::Null)
        } else {
            Value::Null
        },
    });
    let ns = t.ns.clone().unwrap_or_default();
    let opts = write_opts(&query, &headers);
    let not_allowed = || {
        ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
    };
    match verb {
        "get" => {
            let name = t.name.clone().unwrap_or_default();
            let st = shared.lock();
            let obj = st
                .get_shared(&t.def.store_key(), &ns, &name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&t.def.group, &t.def.plural, &name))?;
            drop(st);
            let out = match t.sub {
                Sub::Scale => Cow::Owned(ops::scale_of(&t.def, &obj)?),
                _ => render_one(&t, view, &obj),
            };
            Ok(json_response(StatusCode::OK, &out))
        }
        "list" => list(&shared, &t, &query, view),
        "watch" => {
            if t.sub != Sub::Main {
                return Err(not_allowed());
            }
            let (labels, fields) = selectors(&t.def, &query)?;
            let rv = match query.get("resourceVersion").map(String::as_str) {
                None | Some("") => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    ApiError::invalid(
                        "",
                        "",
                        &format!("resourceVersion: Invalid value: \"{s}\": must be an integer"),
                    )
                })?),
            };
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(Duration::from_secs(1800), Duration::from_secs);
            let req = WatchReq {
                def: t.def.clone(),
                version: t.version.clone(),
                ns: t.ns.clone(),
                labels,
                fields,
                rv,
                send_initial: query.get("sendInitialEvents").is_some_and(|s| s == "true"),
                bookmarks: query
                    .get("allowWatchBookmarks")
                    .is_some_and(|s| s == "true"),
                timeout,
                view,
            };
            Ok(watch::start(shared.clone(), req))
        }
        "create" => {
            if t.name.is_some() || t.sub != Sub::Main || (t.def.namespaced && t.ns.is_none()) {
                return Err(not_allowed());
            }
            let body = parse_body(&body, &content_type)?;
            let created = {
                let mut st = shared.lock();
                ops::create(&mut st, &t.def, &t.version, &ns, body, &opts)?
            };
            Ok(json_response(
                StatusCode::CREATED,
                &render_one(&t, View::Full, &created),
            ))
        }
        "update" => {
            let Some(name) = t.name.clone() else {
                return Err(not_allowed());
            };
            let body = parse_body(&body, &content_type)?;
            let out = {
                let mut st = shared.lock();
                ops::update(&mut st, &t.def, &t.version, &ns, &name, body, t.sub, &opts)?
            };
            Ok(write_reply(&t, StatusCode::OK, &out))
        }
        "patch" => {
            let Some(name) = t.name.clone() else {
                return Err(not_allowed());
            };
            let ptype = PatchType::from_content_type(&content_type).ok_or_else(|| {
                ApiError::unsupported_media(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})"))
            })?;
            let body = parse_body(&body, &content_type)?;
            let (out, created) = {
                let mut st = shared.lock();
                let existed = st.get(&t.def.store_key(), &ns, &name).is_some();
                let out = ops::patch(
                    &mut st, &t.def, &t.version, &ns, &name, ptype, &body, t.sub, &opts,
                )?;
                (out, !existed)
            };
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(write_reply(&t, code, &out))
        }
        "delete" => {
            if t.sub != Sub::Main {
                return Err(not_allowed());
            }
            let name = t.name.clone().unwrap_or_default();
            let dopts = delete_opts(&body, &query)?;
            let res = {
                let mut st = shared.lock();
                ops::delete(&mut st, &t.def, &ns, &name, &dopts)?
            };
            Ok(match res {
                Deleted::Pending(o) => {
                    json_response(StatusCode::OK, &render_one(&t, View::Full, &o))
                }
                Deleted::Gone(o) => json_response(
                    StatusCode::OK,
                    &status::success(&t.def.group, &t.def.plural, name_of(&o), uid_of(&o)),
                ),
            })
        }
        "deletecollection" => {
            if t.sub != Sub::Main {
                return Err(not_allowed());
            }
            let (labels, fields) = selectors(&t.def, &query)?;
            let dopts = delete_opts(&body, &query)?;
            let mut out = Vec::new();
            let rv = {
                let mut st = shared.lock();
                let targets: Vec<(String, String)> = st
                    .list(&t.def.store_key(), t.ns.as_deref(), None)
                    .map(|(_, o)| o)
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .map(|o| (namespace_of(o).to_string(), name_of(o).to_string()))
                    .collect();
                for (ons, oname) in targets {
                    match ops::delete(&mut st, &t.def, &ons, &oname, &dopts)? {
                        Deleted::Pending(o) | Deleted::Gone(o) => out.push(o),
                    }
                }
                st.current_rv()
            };
            Ok(json_response(
                StatusCode::OK,
                &render_list(
                    &t,
                    View::Full,
                    &out,
                    json!({"resourceVersion": rv.to_string()}),
                ),
            ))
        }
        _ => Err(not_allowed()),
    }
}

fn delete_opts(body: &Bytes, query: &HashMap<String, String>) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let dry_body = b
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOpts {
        propagation: s(b.get("propagationPolicy"))
            .or_else(|| query.get("propagationPolicy").cloned())
            .or_else(|| {
                b.get("orphanDependents")
                    .and_then(Value::as_bool)
                    .filter(|o| *o)
                    .map(|_| "Orphan".to_string())
            }),
        precondition_uid: s(b.pointer("/preconditions/uid")),
        precondition_rv: s(b.pointer("/preconditions/resourceVersion")),
        dry_run: dry_body || query.get("dryRun").is_some_and(|d| d == "All"),
    })
}

fn list(
    shared: &Shared,
    t: &Target,
    query: &HashMap<String, String>,
    view: View,
) -> Result<Response<Body>, ApiError> {
    if t.sub != Sub::Main {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let (labels, fields) = selectors(&t.def, query)?;
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_continue(c)?),
        None => None,
    };
    let st = shared.lock();
    let mut items = Vec::new();
    let mut last_key = None;
    let mut remaining = 0usize;
    for (k, o) in st.list(&t.def.store_key(), t.ns.as_deref(), after.as_deref()) {
        if !(labels.matches(o) && fields.matches(o)) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            remaining += 1;
            continue;
        }
        items.push(o.clone());
        last_key = Some(k.clone());
    }
    let mut meta = json!({"resourceVersion": st.current_rv().to_string()});
    drop(st);
    if remaining > 0
        && let Some(k) = last_key
    {
        meta["continue"] = json!(encode_continue(&k));
        // As the real storage: counted only for lists without selectors.
        let unselected = ["labelSelector", "fieldSelector"]
            .iter()
            .all(|k| query.get(*k).is_none_or(|s| s.is_empty()));
        if unselected {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &render_list(t, view, &items, meta),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        assert_eq!(
            decode_continue(&encode_continue("ns/a-b")).unwrap(),
            "ns/a-b"
        );
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue("abc").is_err());
    }
}
