//! JSON-lines logging for the loadtester, shaped like Flagger's zap output: one object per line
//! with `level`, `ts` (ISO 8601, UTC), `msg` and the event's other fields at the top level, so
//! `jq .msg` reads the message. Written to stderr.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Errors of the logging setup.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `--log-level` was not one of the accepted names.
    #[error("unknown log level {0:?} (use debug, info, warn or error)")]
    UnknownLevel(String),
    /// A global subscriber was already installed.
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Parses a zap-style level name. `warning` is accepted as `warn` (Flagger's help text suggests
/// it but Flagger falls back to info).
pub fn parse_level(name: &str) -> Result<LevelFilter, LoggingError> {
    match name.to_ascii_lowercase().as_str() {
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "error" | "fatal" | "panic" => Ok(LevelFilter::ERROR),
        _ => Err(LoggingError::UnknownLevel(name.to_owned())),
    }
}

/// Installs the JSON logger as the global subscriber.
pub fn init(level: LevelFilter) -> Result<(), LoggingError> {
    let subscriber = tracing_subscriber::registry().with(JsonLayer.with_filter(level));
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LoggingError::AlreadyInstalled)
}

/// The layer that prints one JSON object per event.
#[derive(Debug, Clone, Copy)]
pub struct JsonLayer;

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = render(event, SystemTime::now());
        let stderr = std::io::stderr();
        let mut lock = stderr.lock();
        // A failing stderr cannot be reported anywhere else.
        let _ = lock.write_all(line.as_bytes());
    }
}

fn render(event: &Event<'_>, now: SystemTime) -> String {
    let mut fields = Map::new();
    fields.insert(
        "level".into(),
        Value::from(level_name(*event.metadata().level())),
    );
    fields.insert("ts".into(), Value::from(iso8601(now)));
    let mut visitor = JsonVisitor(&mut fields);
    event.record(&mut visitor);
    if !fields.contains_key("msg") {
        fields.insert("msg".into(), Value::from(""));
    }
    let mut line = Value::Object(fields).to_string();
    line.push('\n');
    line
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE | Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            other => other,
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a system time (UTC).
pub fn iso8601(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(iso8601(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn levels_parse_like_zap() {
        assert_eq!(parse_level("debug").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_level("warning").unwrap(), LevelFilter::WARN);
        assert!(parse_level("loud").is_err());
    }

    struct Capture(Arc<Mutex<Vec<String>>>);
    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            self.0.lock().unwrap().push(render(event, UNIX_EPOCH));
        }
    }

    #[test]
    fn message_is_a_top_level_msg_field() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(canary = "podinfo.test", "command finished {}", "hey -z 1m");
        });
        let lines = lines.lock().unwrap();
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["msg"], "command finished hey -z 1m");
        assert_eq!(v["canary"], "podinfo.test");
        assert_eq!(v["level"], "info");
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
    }
}
