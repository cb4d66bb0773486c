//! Test only: a small in-memory Kubernetes API behind a real `kube::Client`, enough for the
//! kube-facing code of `router/` and `workload/` (get, create, merge patch, replace, delete of
//! namespaced objects) and for asserting which writes were made.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::meta::apply_merge_patch;

/// One write request the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    writes: Vec<Write>,
    counter: u64,
}

/// The fake API server; clones share state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

/// The URL path of a namespaced object.
pub fn object_path(api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    format!("{}/{}", collection_path(api_version, kind, namespace), name)
}

fn collection_path(api_version: &str, kind: &str, namespace: &str) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    format!("{prefix}/namespaces/{namespace}/{plural}")
}

impl FakeApi {
    /// A fake and a client talking to it (default namespace `test`).
    pub fn new() -> (Self, kube::Client) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fake = FakeApi::default();
        let handler = fake.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let handler = handler.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let (status, value) = handler.handle(&parts, &bytes);
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(
                        serde_json::to_vec(&value).unwrap(),
                    ))
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        let client = kube::Client::new(service, "test");
        (fake, client)
    }

    /// Stores an object as if it had been created by someone else (no write recorded).
    pub fn insert(&self, mut obj: Value) {
        let path = Self::path_of(&obj);
        let mut state = self.state.lock().unwrap();
        state.counter += 1;
        let n = state.counter;
        let meta = obj["metadata"].as_object_mut().unwrap();
        meta.entry("uid").or_insert(json!(format!("uid-{n}")));
        meta.insert("resourceVersion".into(), json!(n.to_string()));
        state.objects.insert(path, obj);
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let path = object_path(api_version, kind, namespace, name);
        self.state.lock().unwrap().objects.get(&path).cloned()
    }

    /// Write requests received so far.
    pub fn writes(&self) -> Vec<Write> {
        self.state.lock().unwrap().writes.clone()
    }

    pub fn clear_writes(&self) {
        self.state.lock().unwrap().writes.clear();
    }

    fn path_of(obj: &Value) -> String {
        object_path(
            obj["apiVersion"].as_str().unwrap(),
            obj["kind"].as_str().unwrap(),
            obj["metadata"]["namespace"].as_str().unwrap(),
            obj["metadata"]["name"].as_str().unwrap(),
        )
    }

    fn handle(&self, parts: &http::request::Parts, body: &[u8]) -> (u16, Value) {
        let path = parts.uri.path().to_string();
        let method = parts.method.as_str().to_string();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap()
        };
        let mut state = self.state.lock().unwrap();
        if method != "GET" {
            state.writes.push(Write {
                method: method.clone(),
                path: path.clone(),
                content_type: content_type.clone(),
                body: body.clone(),
            });
        }
        state.counter += 1;
        let rv = state.counter;
        match method.as_str() {
            "GET" => match state.objects.get(&path) {
                Some(obj) => (200, obj.clone()),
                None => not_found(&path),
            },
            "POST" => {
                let mut obj = body;
                let name = obj["metadata"]["name"].as_str().unwrap().to_string();
                let full = format!("{path}/{name}");
                if state.objects.contains_key(&full) {
                    return (
                        409,
                        status(409, "AlreadyExists", &format!("{full} already exists")),
                    );
                }
                let meta = obj["metadata"].as_object_mut().unwrap();
                meta.insert("uid".into(), json!(format!("uid-{rv}")));
                meta.insert("resourceVersion".into(), json!(rv.to_string()));
                if let Some(ns) = path
                    .split("/namespaces/")
                    .nth(1)
                    .and_then(|s| s.split('/').next())
                {
                    meta.insert("namespace".into(), json!(ns));
                }
                state.objects.insert(full, obj.clone());
                (201, obj)
            }
            "PATCH" => {
                if content_type != "application/merge-patch+json" {
                    return (
                        415,
                        status(
                            415,
                            "UnsupportedMediaType",
                            &format!("fake supports merge patches only, got {content_type}"),
                        ),
                    );
                }
                match state.objects.get_mut(&path) {
                    Some(obj) => {
                        apply_merge_patch(obj, &body);
                        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                        (200, obj.clone())
                    }
                    None => not_found(&path),
                }
            }
            "PUT" => {
                if !state.objects.contains_key(&path) {
                    return not_found(&path);
                }
                let mut obj = body;
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                state.objects.insert(path, obj.clone());
                (200, obj)
            }
            "DELETE" => match state.objects.remove(&path) {
                Some(obj) => (200, obj),
                None => not_found(&path),
            },
            _ => (405, status(405, "MethodNotAllowed", &method)),
        }
    }
}

fn not_found(path: &str) -> (u16, Value) {
    (404, status(404, "NotFound", &format!("{path} not found")))
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}
