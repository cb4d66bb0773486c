//! The fast path: one raw HTTP/1.1 keep-alive connection per worker, request bytes built once,
//! every phase of hey's "Details" measured from socket events.

use std::time::Instant;

use super::*;

// ---------------------------------------------------------------------------------------------
// Fast path: one raw HTTP/1.1 keep-alive connection per worker

pub(super) struct Conn {
    authority: String,
    raw: RawConn,
    reused: bool,
}

async fn dial(host: &str, port: u16) -> Result<(RawConn, u64, u64), String> {
    let start = Instant::now();
    let addrs: Vec<std::net::SocketAddr> = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
            .collect(),
    };
    let dns_ns = start.elapsed().as_nanos() as u64;
    let mut last_err = format!("dial tcp: lookup {host}: no addresses");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok((
                    RawConn::new(stream),
                    start.elapsed().as_nanos() as u64,
                    dns_ns,
                ));
            }
            Err(e) => last_err = format!("dial tcp {addr}: connect: {e}"),
        }
    }
    Err(last_err)
}

/// The bytes of one request, header names in Go's canonical form.
pub(super) fn build_request(
    method: &Method,
    uri: &Uri,
    host: &str,
    header_lines: &str,
    body: &[u8],
) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = if path.is_empty() { "/" } else { path };
    let mut out =
        Vec::with_capacity(64 + path.len() + host.len() + header_lines.len() + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    out.extend_from_slice(header_lines.as_bytes());
    let needs_length =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if needs_length {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn nanos(later: Instant, earlier: Instant) -> u64 {
    later.saturating_duration_since(earlier).as_nanos() as u64
}

pub(super) async fn fast_request(plan: &Plan, conn: &mut Option<Conn>) -> Outcome {
    let start = Instant::now();
    let mut phases = [0u64; 5];
    let mut uri = plan.uri.clone();
    let mut method = plan.method.clone();
    let mut body = plan.body.clone();
    let mut request: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(&plan.request_bytes);
    let mut redirects = 0;
    loop {
        let fail = |uri: &Uri, e: &str, phases| Outcome {
            result: Err(plan.error_text(&uri.to_string(), e)),
            total_ns: start.elapsed().as_nanos() as u64,
            phases,
        };
        let Some(authority) = uri.authority().cloned() else {
            return fail(&uri, "no host in URL", phases);
        };
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        let mut retried = false;
        let info = loop {
            if conn
                .as_ref()
                .is_none_or(|c| c.authority != authority.as_str())
            {
                *conn = None;
                match dial(authority.host(), authority.port_u16().unwrap_or(80)).await {
                    Ok((raw, dial_ns, dns_ns)) => {
                        phases[phase::DIALUP] += dial_ns;
                        phases[phase::DNS] += dns_ns;
                        *conn = Some(Conn {
                            authority: authority.as_str().to_owned(),
                            raw,
                            reused: false,
                        });
                    }
                    Err(e) => return fail(&uri, &e, phases),
                }
            }
            let Some(c) = conn.as_mut() else {
                return fail(&uri, "no connection", phases);
            };
            let got_conn = Instant::now();
            match c.raw.exchange(&request, method == Method::HEAD).await {
                Ok((info, t)) => {
                    phases[phase::REQ_WRITE] = nanos(t.written, got_conn);
                    phases[phase::RESP_WAIT] = nanos(t.first_byte, t.written);
                    phases[phase::RESP_READ] = nanos(t.done, t.first_byte);
                    if info.close || !plan.keepalive {
                        *conn = None;
                    } else {
                        c.reused = true;
                    }
                    break info;
                }
                Err(RawHttpError::ClosedBeforeResponse) if c.reused && idempotent && !retried => {
                    // The server closed the idle connection: retry once on a new one, as Go's
                    // transport does for idempotent requests.
                    retried = true;
                    *conn = None;
                }
                Err(e) => {
                    *conn = None;
                    return fail(&uri, &e.to_string(), phases);
                }
            }
        };
        let status = info.status;
        let redirect = plan.follow_redirects && matches!(status, 301 | 302 | 303 | 307 | 308);
        if let (true, Some(location)) = (redirect, info.location.as_deref()) {
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return fail(&uri, "stopped after 10 redirects", phases);
            }
            let next = match resolve_location(&uri, location) {
                Ok(u) => u,
                Err(e) => return fail(&uri, &e, phases),
            };
            if next.scheme_str() != Some("http") {
                return fail(
                    &uri,
                    &format!(
                        "redirect to {next}: only http:// redirects are followed by the built-in generator"
                    ),
                    phases,
                );
            }
            if matches!(status, 301..=303) && method != Method::GET && method != Method::HEAD {
                method = Method::GET;
                body = Bytes::new();
            }
            let host = next
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default();
            request = std::borrow::Cow::Owned(build_request(
                &method,
                &next,
                &host,
                &plan.header_lines,
                &body,
            ));
            uri = next;
            continue;
        }
        return Outcome {
            result: Ok((status, info.body_len)),
            total_ns: start.elapsed().as_nanos() as u64,
            phases,
        };
    }
}

pub(super) fn resolve_location(base: &Uri, location: &str) -> Result<Uri, String> {
    if location.contains("://") {
        return location
            .parse()
            .map_err(|e| format!("bad redirect location {location:?}: {e}"));
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}")
            .parse()
            .map_err(|e| format!("bad redirect location {location:?}: {e}"));
    } else if location.starts_with('/') {
        location.to_owned()
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|e| format!("bad redirect location {location:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Fallback path: reqwest (https, proxies, HTTP/2)
