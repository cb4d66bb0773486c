//! hey's command line: shell-like splitting of a task's `cmd` and hey's Go-style flags.
//!
//! Accepted flags (hey 0.1.x): `-n -c -q -z -o -m -H -t -A -d -D -T -U -a -x -host -h2 -cpus
//! -disable-compression -disable-keepalive -disable-redirects`. Go's flag syntax is followed:
//! `-flag value`, `-flag=value`, `--flag`, booleans as `-h2` or `-h2=true`, and flag parsing
//! stops at the first argument that is not a flag (the URL).

use std::time::Duration;

use base64::Engine;

use crate::loadtester::parse_go_duration;

/// hey's default User-Agent, kept so that servers can tell load-test traffic apart.
pub const HEY_USER_AGENT: &str = "hey/0.0.1";

/// Errors in a hey command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeyError {
    /// No URL was given.
    #[error("missing URL: usage: hey [options...] <url>")]
    MissingUrl,
    /// More than one positional argument.
    #[error("unexpected argument {0:?} after the URL")]
    ExtraArgument(String),
    /// A flag hey does not have.
    #[error("flag provided but not defined: -{0}")]
    UnknownFlag(String),
    /// A flag that needs a value came last.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A flag value that does not parse.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `-h` is deprecated in hey.
    #[error("Flag '-h' is deprecated, please use '-H' instead.")]
    DeprecatedH,
    /// `-help` was asked for.
    #[error("{0}")]
    Help(String),
    /// Inconsistent numbers.
    #[error("{0}")]
    Usage(&'static str),
    /// The URL is not an absolute http(s) URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `-D` could not be read.
    #[error("cannot read request body file {path}: {reason}")]
    BodyFile {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// hey's usage text (the subset Serin implements, same wording).
pub const USAGE: &str = "Usage: hey [options...] <url>

Options:
  -n  Number of requests to run. Default is 200.
  -c  Number of workers to run concurrently. Total number of requests cannot
      be smaller than the concurrency level. Default is 50.
  -q  Rate limit, in queries per second (QPS) per worker. Default is no rate limit.
  -z  Duration of application to send requests. When duration is reached,
      application stops and exits. If duration is specified, n is ignored.
      Examples: -z 10s -z 3m.
  -o  Output type. If none provided, a summary is printed.
      \"csv\" is the only supported alternative. Dumps the response
      metrics in comma-separated values format.

  -m  HTTP method, one of GET, POST, PUT, DELETE, HEAD, OPTIONS.
  -H  Custom HTTP header. You can specify as many as needed by repeating the flag.
      For example, -H \"Accept: text/html\" -H \"Content-Type: application/xml\" .
  -t  Timeout for each request in seconds. Default is 20, use 0 for infinite.
  -A  HTTP Accept header.
  -d  HTTP request body.
  -D  HTTP request body from file. For example, /home/user/file.txt or ./file.txt.
  -T  Content-type, defaults to \"text/html\".
  -U  User-Agent, defaults to version \"hey/0.0.1\".
  -a  Basic authentication, username:password.
  -x  HTTP Proxy address as host:port.
  -h2 Enable HTTP/2.

  -host\tHTTP Host header.

  -disable-compression  Disable compression.
  -disable-keepalive    Disable keep-alive, prevents re-use of TCP
                        connections between different HTTP requests.
  -disable-redirects    Disable following of HTTP redirects
  -cpus                 Number of used cpu cores (worker threads of the generator).
";

/// A parsed hey invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct HeyOptions {
    /// Target URL.
    pub url: String,
    /// `-n`: total requests (ignored with `-z`).
    pub requests: u64,
    /// `-c`: concurrent workers.
    pub concurrency: usize,
    /// `-q`: rate limit per worker in requests per second (0 = none).
    pub qps: f64,
    /// `-z`: run for this long instead of `-n` requests.
    pub duration: Option<Duration>,
    /// `-m`: method (upper-cased).
    pub method: String,
    /// Request headers in order (Content-Type, `-H` headers, Accept, User-Agent).
    pub headers: Vec<(String, String)>,
    /// `-d` / `-D`: request body.
    pub body: Option<Vec<u8>>,
    /// `-t`: per-request timeout (`None` = infinite).
    pub timeout: Option<Duration>,
    /// `-host`: Host header override.
    pub host: Option<String>,
    /// `-x`: proxy.
    pub proxy: Option<String>,
    /// `-h2`.
    pub h2: bool,
    /// `-disable-compression`.
    pub disable_compression: bool,
    /// `-disable-keepalive`.
    pub disable_keepalive: bool,
    /// `-disable-redirects`.
    pub disable_redirects: bool,
    /// `-o csv`.
    pub csv: bool,
    /// `-cpus`.
    pub cpus: Option<usize>,
}

impl HeyOptions {
    /// The value of a header (case-insensitive name), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((canonical_header(name), value));
}

/// Go's canonical MIME header key (`content-type` → `Content-Type`).
fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

const VALUE_FLAGS: &[&str] = &[
    "n", "c", "q", "z", "o", "m", "H", "t", "A", "d", "D", "T", "U", "a", "x", "host", "cpus", "h",
];
const BOOL_FLAGS: &[&str] = &[
    "h2",
    "disable-compression",
    "disable-keepalive",
    "disable-redirects",
];

/// Parses hey's arguments (without the leading `hey`).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<HeyOptions, HeyError> {
    let mut n: i64 = 200;
    let mut c: i64 = 50;
    let mut q: f64 = 0.0;
    let mut z: Option<Duration> = None;
    let mut method = "GET".to_owned();
    let mut extra_headers: Vec<String> = Vec::new();
    let mut accept: Option<String> = None;
    let mut content_type = "text/html".to_owned();
    let mut user_agent: Option<String> = None;
    let mut auth: Option<String> = None;
    let mut body: Option<Vec<u8>> = None;
    let mut body_file: Option<String> = None;
    let mut t: i64 = 20;
    let mut host = None;
    let mut proxy = None;
    let mut output = String::new();
    let mut cpus = None;
    let mut h2 = false;
    let mut disable_compression = false;
    let mut disable_keepalive = false;
    let mut disable_redirects = false;

    let mut positional: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_ref();
        i += 1;
        if !positional.is_empty() || arg == "-" || !arg.starts_with('-') {
            positional.push(arg.to_owned());
            continue;
        }
        if arg == "--" {
            positional.extend(args[i..].iter().map(|a| a.as_ref().to_owned()));
            break;
        }
        let stripped = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (stripped, None),
        };
        if name == "help" {
            return Err(HeyError::Help(USAGE.to_owned()));
        }
        if BOOL_FLAGS.contains(&name) {
            let value = match inline.as_deref() {
                None => true,
                Some(v) => parse_go_bool(v).ok_or_else(|| invalid(name, v, "not a boolean"))?,
            };
            match name {
                "h2" => h2 = value,
                "disable-compression" => disable_compression = value,
                "disable-keepalive" => disable_keepalive = value,
                _ => disable_redirects = value,
            }
            continue;
        }
        if !VALUE_FLAGS.contains(&name) {
            return Err(HeyError::UnknownFlag(name.to_owned()));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| HeyError::MissingValue(name.to_owned()))?;
                i += 1;
                v.as_ref().to_owned()
            }
        };
        match name {
            "n" => n = parse_int(name, &value)?,
            "c" => c = parse_int(name, &value)?,
            "t" => t = parse_int(name, &value)?,
            "q" => {
                q = value
                    .trim()
                    .parse::<f64>()
                    .map_err(|e| invalid(name, &value, &e.to_string()))?
            }
            "z" => z = Some(parse_go_duration(&value).map_err(|e| invalid(name, &value, &e))?),
            "o" => output = value,
            "m" => method = value.to_ascii_uppercase(),
            "H" => extra_headers.push(value),
            "A" => accept = Some(value),
            "d" => body = Some(value.into_bytes()),
            "D" => body_file = Some(value),
            "T" => content_type = value,
            "U" => user_agent = Some(value),
            "a" => auth = Some(value),
            "x" => proxy = Some(value),
            "host" => host = Some(value),
            "cpus" => {
                let v = parse_int(name, &value)?;
                cpus = Some(
                    usize::try_from(v)
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| invalid(name, &value, "must be at least 1"))?,
                );
            }
            "h" => {
                if !value.is_empty() {
                    return Err(HeyError::DeprecatedH);
                }
            }
            _ => return Err(HeyError::UnknownFlag(name.to_owned())),
        }
    }

    let mut positional = positional.into_iter();
    let url = positional.next().ok_or(HeyError::MissingUrl)?;
    if let Some(extra) = positional.next() {
        return Err(HeyError::ExtraArgument(extra));
    }
    validate_url(&url)?;

    let duration = z.filter(|d| !d.is_zero());
    if duration.is_some() {
        if c <= 0 {
            return Err(HeyError::Usage("-c cannot be smaller than 1."));
        }
    } else {
        if n <= 0 || c <= 0 {
            return Err(HeyError::Usage("-n and -c cannot be smaller than 1."));
        }
        if n < c {
            return Err(HeyError::Usage("-n cannot be less than -c."));
        }
    }
    if q < 0.0 || !q.is_finite() {
        return Err(invalid(
            "q",
            &q.to_string(),
            "must be a non-negative number",
        ));
    }
    let csv = match output.as_str() {
        "" => false,
        "csv" => true,
        other => return Err(invalid("o", other, "only \"csv\" is supported")),
    };

    let mut headers = Vec::new();
    set_header(&mut headers, "Content-Type", content_type);
    for h in &extra_headers {
        let (name, value) = parse_header(h)?;
        set_header(&mut headers, &name, value);
    }
    if let Some(accept) = accept.filter(|a| !a.is_empty()) {
        set_header(&mut headers, "Accept", accept);
    }
    if let Some(auth) = auth.filter(|a| !a.is_empty()) {
        let (user, pass) = parse_basic_auth(&auth)?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        set_header(&mut headers, "Authorization", format!("Basic {token}"));
    }
    let ua = match (
        user_agent.filter(|u| !u.is_empty()),
        headers.iter().find(|(n, _)| n == "User-Agent"),
    ) {
        (Some(u), _) => format!("{u} {HEY_USER_AGENT}"),
        (None, Some((_, u))) => format!("{u} {HEY_USER_AGENT}"),
        (None, None) => HEY_USER_AGENT.to_owned(),
    };
    set_header(&mut headers, "User-Agent", ua);

    if let Some(path) = body_file.filter(|p| !p.is_empty()) {
        body = Some(std::fs::read(&path).map_err(|e| HeyError::BodyFile {
            path,
            reason: e.to_string(),
        })?);
    }

    Ok(HeyOptions {
        url,
        requests: if duration.is_some() {
            u64::MAX
        } else {
            n as u64
        },
        concurrency: usize::try_from(c).unwrap_or(usize::MAX),
        qps: q,
        duration,
        method,
        headers,
        body: body.filter(|b| !b.is_empty()),
        timeout: if t <= 0 {
            None
        } else {
            Some(Duration::from_secs(t as u64))
        },
        host: host.filter(|h| !h.is_empty()),
        proxy: proxy.filter(|p| !p.is_empty()),
        h2,
        disable_compression,
        disable_keepalive,
        disable_redirects,
        csv,
        cpus,
    })
}

fn invalid(flag: &str, value: &str, reason: &str) -> HeyError {
    HeyError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse_int(flag: &str, value: &str) -> Result<i64, HeyError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|e| invalid(flag, value, &e.to_string()))
}

fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `Name: value` as hey's `^([\w-]+):\s*(.+)`.
fn parse_header(h: &str) -> Result<(String, String), HeyError> {
    let bad = || HeyError::InvalidValue {
        flag: "H".into(),
        value: h.to_owned(),
        reason: "could not parse the provided input".into(),
    };
    let (name, value) = h.split_once(':').ok_or_else(bad)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(bad());
    }
    let value = value.trim_start();
    if value.is_empty() {
        return Err(bad());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `user:password` as hey's `^(.+):([^\s].+)` (the last colon that fits splits).
fn parse_basic_auth(a: &str) -> Result<(String, String), HeyError> {
    let bad = || HeyError::InvalidValue {
        flag: "a".into(),
        value: a.to_owned(),
        reason: "could not parse the provided input".into(),
    };
    let idx = a
        .char_indices()
        .filter(|(_, c)| *c == ':')
        .map(|(i, _)| i)
        .rev()
        .find(|&i| {
            let rest = &a[i + 1..];
            i > 0 && rest.chars().count() >= 2 && !rest.starts_with(char::is_whitespace)
        })
        .ok_or_else(bad)?;
    Ok((a[..idx].to_owned(), a[idx + 1..].to_owned()))
}

fn validate_url(url: &str) -> Result<(), HeyError> {
    let bad = |reason: &str| HeyError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err(bad("unsupported protocol scheme")),
        None => return Err(bad("missing protocol scheme (http:// or https://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(())
}

/// Splits a command line like a POSIX shell would for simple commands: whitespace separates
/// words, single and double quotes group, backslash escapes. Returns `None` when the line uses
/// anything that needs a real shell (pipes, redirections, `;`, `&`, `$`, backquotes, `(`, `)`,
/// a comment, or unbalanced quotes).
pub fn split_command(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => word.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            ch @ ('"' | '\\' | '`' | '$') => word.push(ch),
                            '\n' => {}
                            ch => {
                                word.push('\\');
                                word.push(ch);
                            }
                        },
                        '$' | '`' => return None,
                        ch => word.push(ch),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(ch) => word.push(ch),
                    None => word.push('\\'),
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' | '\r' => return None,
            '#' if !in_word => return None,
            ch => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// If `cmd` is a plain `hey …` invocation (first word `hey` or a path ending in `/hey`, no shell
/// syntax), its arguments after the program name.
pub fn hey_invocation(cmd: &str) -> Option<Vec<String>> {
    let first = cmd.split_whitespace().next()?;
    let program = first.rsplit('/').next().unwrap_or(first);
    if program != "hey" {
        return None;
    }
    let mut words = split_command(cmd)?;
    if words.is_empty() {
        return None;
    }
    words.remove(0);
    Some(words)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(line: &str) -> Result<HeyOptions, HeyError> {
        parse_args(&split_command(line).unwrap())
    }

    #[test]
    fn flagger_tutorial_command() {
        let o = parse("-z 1m -q 10 -c 2 http://podinfo-canary.test:9898/").unwrap();
        assert_eq!(o.duration, Some(Duration::from_secs(60)));
        assert_eq!(o.qps, 10.0);
        assert_eq!(o.concurrency, 2);
        assert_eq!(o.url, "http://podinfo-canary.test:9898/");
        assert_eq!(o.method, "GET");
        assert_eq!(o.timeout, Some(Duration::from_secs(20)));
        assert_eq!(o.header("content-type"), Some("text/html"));
        assert_eq!(o.header("User-Agent"), Some("hey/0.0.1"));
        assert!(o.body.is_none());
    }

    #[test]
    fn defaults_are_heys() {
        let o = parse("http://x/").unwrap();
        assert_eq!((o.requests, o.concurrency, o.duration), (200, 50, None));
        assert!(!o.h2 && !o.disable_keepalive && !o.disable_compression && !o.disable_redirects);
    }

    #[test]
    fn all_value_flags_and_both_spellings() {
        let o = parse(
            "-n=1000 --c 10 -m post -H 'X-Test: a b' -H \"Accept: text/plain\" -d '{\"a\":1}' -T application/json \
             -t 0 -A application/xml -x http://proxy:3128 -host example.com -a user:pa:ss -U curl \
             -h2 -disable-keepalive -disable-compression -disable-redirects=true http://127.0.0.1:8080/api?x=1",
        )
        .unwrap();
        assert_eq!(o.requests, 1000);
        assert_eq!(o.concurrency, 10);
        assert_eq!(o.method, "POST");
        assert_eq!(o.header("x-test"), Some("a b"));
        assert_eq!(
            o.header("Accept"),
            Some("application/xml"),
            "-A overrides -H Accept"
        );
        assert_eq!(o.header("Content-Type"), Some("application/json"));
        assert_eq!(o.header("User-Agent"), Some("curl hey/0.0.1"));
        assert_eq!(o.header("Authorization"), Some("Basic dXNlcjpwYTpzcw=="));
        assert_eq!(o.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(o.timeout, None);
        assert_eq!(o.proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(o.host.as_deref(), Some("example.com"));
        assert!(o.h2 && o.disable_keepalive && o.disable_compression && o.disable_redirects);
        assert_eq!(o.url, "http://127.0.0.1:8080/api?x=1");
    }

    #[test]
    fn body_from_file() {
        let dir = std::env::temp_dir().join(format!("serin-hey-body-{}", std::process::id()));
        std::fs::write(&dir, b"payload").unwrap();
        let o = parse_args(&["-D", dir.to_str().unwrap(), "-m", "PUT", "http://x/"]).unwrap();
        assert_eq!(o.body.as_deref(), Some(&b"payload"[..]));
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            parse_args(&["-D", "/nonexistent/serin", "http://x/"]),
            Err(HeyError::BodyFile { .. })
        ));
    }

    #[test]
    fn errors_match_hey() {
        assert_eq!(
            parse("-n 10 -c 20 http://x/").unwrap_err(),
            HeyError::Usage("-n cannot be less than -c.")
        );
        assert_eq!(
            parse("-c 0 http://x/").unwrap_err(),
            HeyError::Usage("-n and -c cannot be smaller than 1.")
        );
        assert_eq!(
            parse("-z 10s -c 0 http://x/").unwrap_err(),
            HeyError::Usage("-c cannot be smaller than 1.")
        );
        assert_eq!(
            parse("-h 'A: b' http://x/").unwrap_err(),
            HeyError::DeprecatedH
        );
        assert_eq!(
            parse("-k http://x/").unwrap_err(),
            HeyError::UnknownFlag("k".into())
        );
        assert_eq!(
            parse("http://x/ -c 2").unwrap_err(),
            HeyError::ExtraArgument("-c".into())
        );
        assert_eq!(parse("-c").unwrap_err(), HeyError::MissingValue("c".into()));
        assert_eq!(parse("-c 2").unwrap_err(), HeyError::MissingUrl);
        assert!(matches!(
            parse("-z forever http://x/"),
            Err(HeyError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("-H nocolon http://x/"),
            Err(HeyError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("-o json http://x/"),
            Err(HeyError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("podinfo:9898/"),
            Err(HeyError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse("ftp://x/"),
            Err(HeyError::InvalidUrl { .. })
        ));
        assert!(matches!(parse("-help"), Err(HeyError::Help(_))));
    }

    #[test]
    fn z_overrides_n() {
        let o = parse("-z 2s -n 5 -c 10 http://x/").unwrap();
        assert_eq!(o.duration, Some(Duration::from_secs(2)));
        assert_eq!(o.requests, u64::MAX);
    }

    #[test]
    fn splitting_follows_shell_quoting() {
        assert_eq!(
            split_command(r#"hey -H "A: \"q\"" -d 'x y' a\ b"#).unwrap(),
            ["hey", "-H", "A: \"q\"", "-d", "x y", "a b"]
        );
        assert_eq!(
            split_command("  hey   http://x/  ").unwrap(),
            ["hey", "http://x/"]
        );
        assert_eq!(split_command("hey 'unterminated"), None);
        assert_eq!(split_command("hey http://x/ | tee out"), None);
        assert_eq!(split_command("hey http://x/ > /dev/null"), None);
        assert_eq!(split_command("hey $URL"), None);
        assert_eq!(split_command("hey \"$URL\""), None);
        assert_eq!(
            split_command("hey http://x/?a=1&b=2"),
            None,
            "an unquoted & needs the shell"
        );
        assert_eq!(
            split_command("hey 'http://x/?a=1&b=2'").unwrap(),
            ["hey", "http://x/?a=1&b=2"]
        );
    }

    #[test]
    fn hey_detection() {
        assert_eq!(
            hey_invocation("hey -z 1m http://x/").unwrap(),
            ["-z", "1m", "http://x/"]
        );
        assert_eq!(
            hey_invocation("  /usr/local/bin/hey http://x/").unwrap(),
            ["http://x/"]
        );
        assert_eq!(hey_invocation("heyo http://x/"), None);
        assert_eq!(hey_invocation("curl http://x/"), None);
        assert_eq!(hey_invocation("hey http://x/ && echo done"), None);
    }
}
