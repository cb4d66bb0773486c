//! Logging set-up (Flagger's `pkg/logger/logger.go`): JSON lines by default, as Flagger's zap
//! logger writes them, or a human-readable console format.
//!
//! A JSON line has the keys `level` (lowercase), `ts` (ISO 8601, UTC), `caller`
//! (`file:line`), `msg`, then the fields of the enclosing spans (outermost first) and of the
//! event, flattened: `tracing::info!(canary = "podinfo.test", "Advance ...")` gives
//! `{"level":"info","ts":"…","caller":"…","msg":"Advance ...","canary":"podinfo.test"}`, so
//! `kubectl logs deploy/serin | jq .msg` works as with Flagger.

use std::fmt;
use std::io::{IsTerminal, Write};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Output format: `--zap-encoding json|console` (Flagger's flag) or `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (Flagger's default).
    #[default]
    Json,
    /// Human-readable lines.
    Console,
}

/// Logging flags. Flatten into a subcommand's arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LogArgs {
    /// Log level: debug, info, warn (or warning), error; fatal and panic mean error. Unknown
    /// values fall back to info with a warning. `RUST_LOG`, when set, overrides it.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "debug")]
    pub log_level: String,
    /// Log encoding: json or console.
    #[arg(
        long = "zap-encoding",
        alias = "log-format",
        value_name = "FORMAT",
        value_enum,
        default_value_t = LogFormat::Json
    )]
    pub format: LogFormat,
    /// Accepted for compatibility with Flagger's manifests; has no effect.
    #[arg(
        long = "zap-replace-globals",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub zap_replace_globals: bool,
}

impl Default for LogArgs {
    fn default() -> Self {
        LogArgs {
            log_level: "debug".to_owned(),
            format: LogFormat::Json,
            zap_replace_globals: false,
        }
    }
}

impl LogArgs {
    /// Installs the global logger from these flags (see [`init`]).
    pub fn init(&self) -> Result<(), LoggingError> {
        init(&self.log_level, self.format)
    }
}

/// Maps a `-log-level` value to a level. `warning` is accepted (Flagger advertises it but falls
/// back to info; fixed), `fatal` and `panic` mean error, `trace` is an extension.
/// Returns `None` for anything else.
pub fn parse_level(level: &str) -> Option<LevelFilter> {
    match level.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "error" | "fatal" | "panic" | "dpanic" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// The filter for `level`: Serin's own events at `level`, other crates (kube, hyper, rustls…)
/// at `level` but never more verbose than info, so that Flagger's default `debug` stays
/// readable. Unknown levels mean info.
pub fn filter_for(level: LevelFilter) -> EnvFilter {
    let deps = level.min(LevelFilter::INFO);
    let directives = format!("{},serin={}", level_name(deps), level_name(level));
    EnvFilter::builder().parse_lossy(directives)
}

fn level_name(level: LevelFilter) -> &'static str {
    match level.into_level() {
        None => "off",
        Some(Level::TRACE) => "trace",
        Some(Level::DEBUG) => "debug",
        Some(Level::INFO) => "info",
        Some(Level::WARN) => "warn",
        Some(Level::ERROR) => "error",
    }
}

/// Installs the global logger writing to stderr, as zap does. `RUST_LOG`, when set and
/// non-empty, replaces the filter derived from `level`. An unknown `level` logs a warning and
/// uses info.
pub fn init(level: &str, format: LogFormat) -> Result<(), LoggingError> {
    let parsed = parse_level(level);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::builder().parse_lossy(directives)
        }
        _ => filter_for(parsed.unwrap_or(LevelFilter::INFO)),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry.with(JsonLayer::new(std::io::stderr)).try_init(),
        LogFormat::Console => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
    };
    result.map_err(|e| LoggingError::AlreadyInstalled(e.to_string()))?;
    if parsed.is_none() {
        tracing::warn!("unknown log level {level:?}, using info");
    }
    Ok(())
}

/// Fields recorded on a span, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Vec<(String, Value)>);

fn upsert(fields: &mut Vec<(String, Value)>, key: &str, value: Value) {
    if let Some(slot) = fields.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
    } else {
        fields.push((key.to_owned(), value));
    }
}

struct JsonVisitor<'a>(&'a mut Vec<(String, Value)>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let key = match field.name() {
            "message" => "msg",
            // Records from the `log` crate: their target is zap's `logger`; module, file and
            // line are noise next to `caller`.
            "log.target" => "logger",
            name if name.starts_with("log.") => return,
            name => name,
        };
        upsert(self.0, key, value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// A `tracing` layer writing zap-style JSON lines to `W` (stderr in production, a buffer in
/// tests).
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    pub fn new(make_writer: W) -> Self {
        JsonLayer { make_writer }
    }
}

fn caller(meta: &tracing::Metadata<'_>) -> Option<String> {
    let file = meta.file()?;
    // Short form, like zap: the last two path components.
    let mut parts = file.rsplit(['/', '\\']);
    let name = parts.next().unwrap_or(file);
    let short = match parts.next() {
        Some(dir) => format!("{dir}/{name}"),
        None => name.to_owned(),
    };
    Some(match meta.line() {
        Some(line) => format!("{short}:{line}"),
        None => short,
    })
}

fn timestamp() -> String {
    let mut ts = String::new();
    // Formatting into a String cannot fail; on the impossible error the key is just empty.
    let _ = SystemTime.format_time(&mut Writer::new(&mut ts));
    ts
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line: Vec<(String, Value)> = vec![
            (
                "level".to_owned(),
                Value::String(meta.level().as_str().to_ascii_lowercase()),
            ),
            ("ts".to_owned(), Value::String(timestamp())),
        ];
        if let Some(caller) = caller(meta) {
            line.push(("caller".to_owned(), Value::String(caller)));
        }
        line.push(("msg".to_owned(), Value::String(String::new())));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        upsert(&mut line, k, v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));

        let mut out = String::with_capacity(256);
        out.push('{');
        for (i, (key, value)) in line.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Serialising a String or a Value into JSON cannot fail.
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push(':');
            out.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        out.push_str("}\n");
        let mut writer = self.make_writer.make_writer_for(meta);
        // A log line that cannot be written has nowhere to be reported.
        let _ = writer.write_all(out.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn levels_follow_flagger_with_warning_fixed() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(parse_level("info"), Some(LevelFilter::INFO));
        assert_eq!(parse_level("warn"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("warning"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("error"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("fatal"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("panic"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("INFO"), Some(LevelFilter::INFO));
        assert_eq!(parse_level("verbose"), None);
        assert_eq!(parse_level(""), None);
    }

    #[test]
    fn filter_caps_dependencies_at_info() {
        assert_eq!(
            filter_for(LevelFilter::DEBUG).to_string(),
            "serin=debug,info"
        );
        assert_eq!(filter_for(LevelFilter::WARN).to_string(), "serin=warn,warn");
    }
}
