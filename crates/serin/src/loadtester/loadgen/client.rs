//! The reqwest engine for `https://` targets, `-x` proxies and `-h2`: only the total latency is
//! measured.

use std::time::Instant;

use super::*;
use crate::tls::{Alpn, Verification};

pub(super) fn build_client(opts: &HeyOptions) -> Result<reqwest::Client, LoadgenError> {
    let alpn = if opts.h2 {
        Alpn::Http2OrHttp1
    } else {
        Alpn::Http1
    };
    // `hey` does not check certificates.
    let mut builder = crate::tls::http_client(Verification::AcceptAny, alpn)
        .map_err(|e| LoadgenError::Client(e.to_string()))?
        .pool_max_idle_per_host(opts.concurrency.min(500))
        .redirect(if opts.disable_redirects {
            reqwest::redirect::Policy::none()
        } else {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        });
    if opts.disable_keepalive {
        builder = builder.pool_max_idle_per_host(0);
    }
    if let Some(proxy) = &opts.proxy {
        let proxy_url = if proxy.contains("://") {
            proxy.clone()
        } else {
            format!("http://{proxy}")
        };
        builder = builder.proxy(
            reqwest::Proxy::all(&proxy_url)
                .map_err(|e| LoadgenError::Client(format!("-x {proxy}: {e}")))?,
        );
    }
    builder
        .build()
        .map_err(|e| LoadgenError::Client(e.to_string()))
}

pub(super) async fn client_request(plan: &Plan, client: &reqwest::Client) -> Outcome {
    let start = Instant::now();
    let mut headers = plan.headers.clone();
    if let Some(h) = &plan.host_override {
        headers.insert(HOST, h.clone());
    }
    let mut req = client
        .request(plan.method.clone(), plan.url.as_str())
        .headers(headers);
    if !plan.body.is_empty() {
        req = req.body(plan.body.clone());
    }
    let result = async {
        let mut resp = req.send().await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
            size += chunk.len() as u64;
        }
        Ok::<_, String>((status, size))
    }
    .await;
    Outcome {
        result: result.map_err(|e| plan.error_text(&plan.url, &e)),
        total_ns: start.elapsed().as_nanos() as u64,
        phases: [0; 5],
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
