//! The filters of Serin's HTTPRoute rules: request and response header modifiers, URL rewrite,
//! `service.mirror` and CORS, from the Canary's service.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{CORS, REQUEST_HEADER_MODIFIER, REQUEST_MIRROR, RESPONSE_HEADER_MODIFIER, URL_REWRITE};
use crate::api::apis::gatewayapi::{
    HttpHeader, HttpHeaderFilter, HttpPathModifier, HttpRequestMirrorFilter, HttpRouteFilter,
    HttpUrlRewriteFilter,
};
use crate::api::apis::istio::{CorsPolicy, HeaderOperations};
use crate::api::duration;
use crate::api::provider::GatewayApiVersion;
use crate::api::service::CanaryService;

fn header_list(map: Option<&BTreeMap<String, String>>) -> Option<Vec<HttpHeader>> {
    let list: Vec<HttpHeader> = map
        .into_iter()
        .flatten()
        .map(|(name, value)| HttpHeader {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

pub(in crate::router::gatewayapi) fn header_filter(ops: &HeaderOperations) -> HttpHeaderFilter {
    HttpHeaderFilter {
        set: header_list(ops.set.as_ref()),
        add: header_list(ops.add.as_ref()),
        remove: ops.remove.clone().filter(|r| !r.is_empty()),
        ..Default::default()
    }
}

fn cors_filter(cors: &CorsPolicy) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, list: Option<&Vec<String>>| {
        if let Some(list) = list.filter(|l| !l.is_empty()) {
            out.insert(key.to_string(), json!(list));
        }
    };
    put("allowOrigins", cors.allow_origin.as_ref());
    put("allowMethods", cors.allow_methods.as_ref());
    put("allowHeaders", cors.allow_headers.as_ref());
    put("exposeHeaders", cors.expose_headers.as_ref());
    if cors.allow_credentials == Some(true) {
        out.insert("allowCredentials".into(), json!(true));
    }
    if let Some(age) = cors.max_age.as_deref().and_then(duration::parse) {
        out.insert("maxAge".into(), json!(age.as_secs()));
    }
    Value::Object(out)
}

/// The filters of every Serin rule: headers, rewrite, `service.mirror`, CORS (v1 only).
pub(super) fn filters(svc: &CanaryService, version: GatewayApiVersion) -> Vec<HttpRouteFilter> {
    let mut out = Vec::new();
    if let Some(headers) = &svc.headers {
        if let Some(req) = &headers.request {
            out.push(HttpRouteFilter {
                filter_type: REQUEST_HEADER_MODIFIER.to_string(),
                request_header_modifier: Some(header_filter(req)),
                ..Default::default()
            });
        }
        if let Some(resp) = &headers.response {
            out.push(HttpRouteFilter {
                filter_type: RESPONSE_HEADER_MODIFIER.to_string(),
                response_header_modifier: Some(header_filter(resp)),
                ..Default::default()
            });
        }
    }
    if let Some(rewrite) = &svc.rewrite {
        let path = rewrite.uri.as_ref().filter(|u| !u.is_empty()).map(|uri| {
            if rewrite.rewrite_type.as_deref() == Some("ReplacePrefixMatch") {
                HttpPathModifier {
                    modifier_type: "ReplacePrefixMatch".to_string(),
                    replace_prefix_match: Some(uri.clone()),
                    ..Default::default()
                }
            } else {
                HttpPathModifier {
                    modifier_type: "ReplaceFullPath".to_string(),
                    replace_full_path: Some(uri.clone()),
                    ..Default::default()
                }
            }
        });
        out.push(HttpRouteFilter {
            filter_type: URL_REWRITE.to_string(),
            url_rewrite: Some(HttpUrlRewriteFilter {
                hostname: rewrite.authority.clone().filter(|a| !a.is_empty()),
                path,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    for mirror in svc.mirror.iter().flatten() {
        out.push(HttpRouteFilter {
            filter_type: REQUEST_MIRROR.to_string(),
            request_mirror: Some(HttpRequestMirrorFilter {
                backend_ref: mirror.backend_ref.clone(),
                percent: None,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if version == GatewayApiVersion::V1
        && let Some(cors) = &svc.cors_policy
    {
        out.push(HttpRouteFilter {
            filter_type: CORS.to_string(),
            cors: Some(cors_filter(cors)),
            ..Default::default()
        });
    }
    out
}
