//! Query rendering: the subset of Go's `text/template` that Flagger's MetricTemplates and built-in
//! queries use.
//!
//! Flagger executes templates with **nil data** and exposes the model as zero-argument
//! functions, so templates write `{{ namespace }}`, `{{ target }}`, `{{ interval }}`,
//! `{{ variables.key }}`. Supported here:
//!
//! * literal text and `{{- … -}}` whitespace trimming;
//! * comments `{{/* … */}}`;
//! * the model functions `name`, `namespace`, `target`, `service`, `ingress`, `route`, `interval`
//!   and `variables` (a map; `variables.key` and `index variables "key"`, a missing key is an
//!   error as with Go's `missingkey=error`);
//! * variables: `{{ $x := pipeline }}`, `{{ $x = pipeline }}`, `{{ $x }}`;
//! * pipelines `a | f b` (the piped value is the last argument), parenthesised pipelines;
//! * string (`"…"`, `` `…` ``), number and boolean literals;
//! * the Go builtins `printf`, `print`, `println`, `urlquery`, `len`, `index`.
//!
//! Control structures (`if`, `range`, `with`, `define`, `template`, `block`, …), fields of the
//! data (`{{ .namespace }}`) and other functions are reported as a [`TemplateError`] naming the
//! construct; nothing panics.

use std::collections::BTreeMap;

mod eval;
mod parse;
mod value;

use eval::eval_pipeline;
use parse::{Node, parse};
use value::Value;
pub(crate) use value::{go_float, query_escape};

/// The values a query template can read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryModel {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// `targetRef.name`.
    pub target: String,
    /// `service.name`, or the target name.
    pub service: String,
    /// `ingressRef.name`, or the target name.
    pub ingress: String,
    /// `routeRef.name`, or the target name (Knative: the latest created revision).
    pub route: String,
    /// The metric's query window (`1m`, `30s`).
    pub interval: String,
    /// `templateVariables`.
    pub variables: BTreeMap<String, String>,
}

/// Why a template could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed (unclosed action, bad string literal, …).
    #[error("template syntax error at byte {offset}: {message}")]
    Syntax { offset: usize, message: String },
    /// A Go template construct Serin does not implement.
    #[error(
        "unsupported template construct {construct:?} at byte {offset}: Serin supports functions ({{{{ namespace }}}}, {{{{ variables.key }}}}), $variables, printf and pipelines"
    )]
    Unsupported { offset: usize, construct: String },
    /// A function name that is not defined.
    #[error("function {0:?} not defined")]
    UnknownFunction(String),
    /// `variables.key` (or `index variables "key"`) with a key that is not in `templateVariables`.
    #[error("map has no entry for key {0:?} (set it in the metric's templateVariables)")]
    MissingKey(String),
    /// A `$variable` used before it was declared.
    #[error("undefined variable {0:?}")]
    UndefinedVariable(String),
    /// Evaluation failed (wrong number of arguments, field access on a string, …).
    #[error("error calling {context}: {message}")]
    Exec { context: String, message: String },
}

/// Renders `template` against `model`.
pub fn render(template: &str, model: &QueryModel) -> Result<String, TemplateError> {
    let nodes = parse(template)?;
    let mut out = String::with_capacity(template.len());
    let mut scope: Vec<(String, Value)> = Vec::new();
    for node in &nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(action) => {
                let value = eval_pipeline(&action.pipeline, model, &scope)?;
                match &action.assign {
                    Some((var, _declare)) => {
                        // Go scopes `:=` to the enclosing block; without control structures the
                        // whole template is one block, so declare and assign are the same.
                        if let Some(slot) = scope.iter_mut().rev().find(|(n, _)| n == var) {
                            slot.1 = value;
                        } else {
                            scope.push((var.clone(), value));
                        }
                    }
                    None => out.push_str(&value.to_go_string()),
                }
            }
        }
    }
    Ok(out)
}

/// Collapses every run of whitespace into one space and trims both ends, as Flagger does before
/// sending a query to Prometheus or Graphite.
pub fn collapse_whitespace(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces every non-word character (regex `\W`) with `_` (Skipper's route-name mangling).
pub fn skipper_sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
