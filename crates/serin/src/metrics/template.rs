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
use std::fmt::Write as _;

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

// ---------------------------------------------------------------------------------------------
// Values

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Map(BTreeMap<String, String>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::Map(_) => "map[string]string",
        }
    }

    /// What Go's `fmt.Sprint` prints for the value.
    fn to_go_string(&self) -> String {
        match self {
            Value::Nil => "<no value>".to_string(),
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => go_float(*f),
            Value::Bool(b) => b.to_string(),
            Value::Map(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", items.join(" "))
            }
        }
    }
}

/// Go's `%v` for a float64 (shortest representation, exponent outside [1e-4, 1e21)).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        // Rust: `1e-5`, Go: `1e-05`.
        let s = format!("{f:e}");
        if let Some((mantissa, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let digits = if digits.len() < 2 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            return format!("{mantissa}e{sign}{digits}");
        }
        return s;
    }
    format!("{f}")
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Action),
}

#[derive(Debug)]
struct Action {
    /// `$x :=` (true) or `$x =` (false).
    assign: Option<(String, bool)>,
    pipeline: Pipeline,
}

#[derive(Debug)]
struct Pipeline {
    commands: Vec<Command>,
}

#[derive(Debug)]
struct Command {
    offset: usize,
    operands: Vec<Operand>,
}

#[derive(Debug)]
enum Operand {
    Function {
        name: String,
        chain: Vec<String>,
    },
    Variable {
        name: String,
        chain: Vec<String>,
    },
    Literal(Value),
    Paren {
        pipeline: Pipeline,
        chain: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Var(String),
    Field(String),
    Str(String),
    Number(Value),
    Bool(bool),
    Nil,
    Dot,
    Pipe,
    Declare,
    Assign,
    LParen,
    RParen,
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn parse(template: &str) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    let mut rest = template;
    let mut offset = 0usize;
    let mut trim_next_text = false;
    loop {
        let Some(start) = rest.find("{{") else {
            let mut text = rest;
            if trim_next_text {
                text = text.trim_start_matches(is_go_space);
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_string()));
            }
            break;
        };
        let mut text = &rest[..start];
        if trim_next_text {
            text = text.trim_start_matches(is_go_space);
        }
        let after_open = &rest[start + 2..];
        let trim_left =
            after_open.starts_with('-') && after_open[1..].starts_with(|c: char| is_go_space(c));
        if trim_left {
            text = text.trim_end_matches(is_go_space);
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_string()));
        }
        let action_offset = offset + start;
        let body_start = if trim_left { 3 } else { 2 };
        let inner = &rest[start + body_start..];
        let (body, trim_right, consumed) =
            find_action_end(inner).ok_or_else(|| TemplateError::Syntax {
                offset: action_offset,
                message: "unclosed action (missing \"}}\")".to_string(),
            })?;
        let body_offset = action_offset + body_start;
        let trimmed = body.trim_matches(is_go_space);
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(TemplateError::Syntax {
                    offset: action_offset,
                    message: "unclosed comment".to_string(),
                });
            }
        } else {
            let action = parse_action(body, body_offset)?;
            nodes.push(Node::Action(action));
        }
        trim_next_text = trim_right;
        let advance = start + body_start + consumed;
        offset += advance;
        rest = &rest[advance..];
    }
    Ok(nodes)
}

fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Finds the end of an action body: returns (body, right-trim marker, bytes consumed incl. `}}`).
/// Skips `}}` inside string literals.
fn find_action_end(inner: &str) -> Option<(&str, bool, usize)> {
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                let trim_right =
                    i >= 2 && bytes[i - 1] == b'-' && is_go_space(bytes[i - 2] as char);
                let body_end = if trim_right { i - 1 } else { i };
                return Some((&inner[..body_end], trim_right, i + 2));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn lex(body: &str, base: usize) -> Result<Vec<(usize, Token)>, TemplateError> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let mut i = 0;
    let syntax = |offset: usize, message: String| TemplateError::Syntax {
        offset: base + offset,
        message,
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        if is_go_space(c) {
            i += 1;
            continue;
        }
        let word_end = |mut j: usize| {
            while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                j += 1;
            }
            j
        };
        let slice = |from: usize, to: usize| -> &str {
            let start = chars.get(from).map_or(body.len(), |c| c.0);
            let end = chars.get(to).map_or(body.len(), |c| c.0);
            &body[start..end]
        };
        match c {
            '|' => {
                tokens.push((pos, Token::Pipe));
                i += 1;
            }
            '(' => {
                tokens.push((pos, Token::LParen));
                i += 1;
            }
            ')' => {
                tokens.push((pos, Token::RParen));
                i += 1;
            }
            ':' if chars.get(i + 1).map(|c| c.1) == Some('=') => {
                tokens.push((pos, Token::Declare));
                i += 2;
            }
            '=' => {
                tokens.push((pos, Token::Assign));
                i += 1;
            }
            '$' => {
                let end = word_end(i + 1);
                tokens.push((pos, Token::Var(slice(i, end).to_string())));
                i = end;
            }
            '.' => {
                let end = word_end(i + 1);
                if end == i + 1 {
                    tokens.push((pos, Token::Dot));
                } else {
                    tokens.push((pos, Token::Field(slice(i + 1, end).to_string())));
                }
                i = end;
            }
            '"' => {
                let mut j = i + 1;
                let mut value = String::new();
                loop {
                    let Some(&(_, ch)) = chars.get(j) else {
                        return Err(syntax(pos, "unterminated quoted string".to_string()));
                    };
                    match ch {
                        '"' => break,
                        '\\' => {
                            let esc = chars.get(j + 1).map(|c| c.1);
                            let decoded = match esc {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                Some('\'') => '\'',
                                other => {
                                    return Err(syntax(
                                        chars[j].0,
                                        format!(
                                            "unsupported escape sequence \\{}",
                                            other.map(String::from).unwrap_or_default()
                                        ),
                                    ));
                                }
                            };
                            value.push(decoded);
                            j += 2;
                        }
                        '\n' => {
                            return Err(syntax(pos, "unterminated quoted string".to_string()));
                        }
                        other => {
                            value.push(other);
                            j += 1;
                        }
                    }
                }
                tokens.push((pos, Token::Str(value)));
                i = j + 1;
            }
            '`' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j].1 != '`' {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(syntax(pos, "unterminated raw quoted string".to_string()));
                }
                tokens.push((pos, Token::Str(slice(i + 1, j).to_string())));
                i = j + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(|n| n.1.is_ascii_digit())) =>
            {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].1.is_ascii_alphanumeric()
                        || chars[j].1 == '.'
                        || chars[j].1 == '_')
                {
                    j += 1;
                }
                let text = slice(i, j).replace('_', "");
                let value = if let Ok(v) = text.parse::<i64>() {
                    Value::Int(v)
                } else if let Ok(v) = text.parse::<f64>() {
                    Value::Float(v)
                } else {
                    return Err(syntax(pos, format!("bad number syntax: {text:?}")));
                };
                tokens.push((pos, Token::Number(value)));
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = word_end(i);
                let word = slice(i, end).to_string();
                let token = match word.as_str() {
                    "true" => Token::Bool(true),
                    "false" => Token::Bool(false),
                    "nil" => Token::Nil,
                    _ => Token::Ident(word),
                };
                tokens.push((pos, token));
                i = end;
            }
            other => {
                return Err(syntax(pos, format!("unexpected {other:?} in action")));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end_offset: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.1)
    }
    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end_offset, |t| t.0)
    }
    fn next(&mut self) -> Option<(usize, Token)> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn chain(&mut self) -> Vec<String> {
        let mut chain = Vec::new();
        while let Some(Token::Field(f)) = self.peek() {
            chain.push(f.clone());
            self.pos += 1;
        }
        chain
    }

    fn pipeline(&mut self, in_paren: bool) -> Result<Pipeline, TemplateError> {
        let mut commands = Vec::new();
        loop {
            let offset = self.offset();
            let mut operands = Vec::new();
            loop {
                match self.peek() {
                    None | Some(Token::Pipe) => break,
                    Some(Token::RParen) if in_paren => break,
                    _ => operands.push(self.operand()?),
                }
            }
            if operands.is_empty() {
                return Err(TemplateError::Syntax {
                    offset,
                    message: "missing command in pipeline".to_string(),
                });
            }
            commands.push(Command { offset, operands });
            match self.peek() {
                Some(Token::Pipe) => {
                    self.pos += 1;
                }
                _ => break,
            }
        }
        Ok(Pipeline { commands })
    }

    fn operand(&mut self) -> Result<Operand, TemplateError> {
        let Some((offset, token)) = self.next() else {
            return Err(TemplateError::Syntax {
                offset: self.end_offset,
                message: "unexpected end of action".to_string(),
            });
        };
        let operand = match token {
            Token::Ident(name) => {
                if KEYWORDS.contains(&name.as_str()) {
                    return Err(TemplateError::Unsupported {
                        offset,
                        construct: name,
                    });
                }
                let chain = self.chain();
                Operand::Function { name, chain }
            }
            Token::Var(name) => {
                let chain = self.chain();
                Operand::Variable { name, chain }
            }
            Token::Str(s) => Operand::Literal(Value::Str(s)),
            Token::Number(v) => Operand::Literal(v),
            Token::Bool(b) => Operand::Literal(Value::Bool(b)),
            Token::Nil => {
                return Err(TemplateError::Syntax {
                    offset,
                    message: "nil is not a command".to_string(),
                });
            }
            Token::Dot | Token::Field(_) => {
                let construct = match token {
                    Token::Field(f) => format!(".{f}"),
                    _ => ".".to_string(),
                };
                return Err(TemplateError::Unsupported { offset, construct });
            }
            Token::LParen => {
                let pipeline = self.pipeline(true)?;
                match self.next() {
                    Some((_, Token::RParen)) => {}
                    _ => {
                        return Err(TemplateError::Syntax {
                            offset,
                            message: "unclosed left paren".to_string(),
                        });
                    }
                }
                let chain = self.chain();
                Operand::Paren { pipeline, chain }
            }
            Token::RParen => {
                return Err(TemplateError::Syntax {
                    offset,
                    message: "unexpected right paren".to_string(),
                });
            }
            Token::Pipe | Token::Declare | Token::Assign => {
                return Err(TemplateError::Syntax {
                    offset,
                    message: format!("unexpected {token:?} in operand"),
                });
            }
        };
        Ok(operand)
    }
}

fn parse_action(body: &str, base: usize) -> Result<Action, TemplateError> {
    let tokens = lex(body, base)?;
    if tokens.is_empty() {
        return Err(TemplateError::Syntax {
            offset: base,
            message: "missing value for command".to_string(),
        });
    }
    let mut parser = Parser {
        tokens: tokens.into_iter().map(|(o, t)| (o + base, t)).collect(),
        pos: 0,
        end_offset: base + body.len(),
    };
    let mut assign = None;
    if let (Some((_, Token::Var(name))), Some((_, op))) =
        (parser.tokens.first(), parser.tokens.get(1))
    {
        match op {
            Token::Declare => assign = Some((name.clone(), true)),
            Token::Assign => assign = Some((name.clone(), false)),
            _ => {}
        }
        if assign.is_some() {
            parser.pos = 2;
        }
    }
    let pipeline = parser.pipeline(false)?;
    if let Some((offset, token)) = parser.next() {
        return Err(TemplateError::Syntax {
            offset,
            message: format!("unexpected {token:?} in action"),
        });
    }
    Ok(Action { assign, pipeline })
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn eval_pipeline(
    pipeline: &Pipeline,
    model: &QueryModel,
    scope: &[(String, Value)],
) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in &pipeline.commands {
        piped = Some(eval_command(command, piped.take(), model, scope)?);
    }
    Ok(piped.unwrap_or(Value::Nil))
}

fn eval_command(
    command: &Command,
    piped: Option<Value>,
    model: &QueryModel,
    scope: &[(String, Value)],
) -> Result<Value, TemplateError> {
    let Some((first, rest)) = command.operands.split_first() else {
        return Err(TemplateError::Syntax {
            offset: command.offset,
            message: "empty command".to_string(),
        });
    };
    match first {
        Operand::Function { name, chain } => {
            let mut args = Vec::with_capacity(rest.len() + 1);
            for operand in rest {
                args.push(eval_operand(operand, model, scope)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            let value = call_function(name, args, model)?;
            apply_chain(value, chain, name)
        }
        _ => {
            if !rest.is_empty() || piped.is_some() {
                return Err(TemplateError::Exec {
                    context: describe(first),
                    message: "can't give argument to non-function".to_string(),
                });
            }
            eval_operand(first, model, scope)
        }
    }
}

fn describe(operand: &Operand) -> String {
    match operand {
        Operand::Function { name, .. } => name.clone(),
        Operand::Variable { name, .. } => name.clone(),
        Operand::Literal(v) => format!("{:?}", v.to_go_string()),
        Operand::Paren { .. } => "(…)".to_string(),
    }
}

fn eval_operand(
    operand: &Operand,
    model: &QueryModel,
    scope: &[(String, Value)],
) -> Result<Value, TemplateError> {
    match operand {
        Operand::Function { name, chain } => {
            let value = call_function(name, Vec::new(), model)?;
            apply_chain(value, chain, name)
        }
        Operand::Variable { name, chain } => {
            let value = if name == "$" {
                Value::Nil
            } else {
                scope
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| TemplateError::UndefinedVariable(name.clone()))?
            };
            apply_chain(value, chain, name)
        }
        Operand::Literal(v) => Ok(v.clone()),
        Operand::Paren { pipeline, chain } => {
            let value = eval_pipeline(pipeline, model, scope)?;
            apply_chain(value, chain, "(…)")
        }
    }
}

fn apply_chain(mut value: Value, chain: &[String], context: &str) -> Result<Value, TemplateError> {
    for key in chain {
        value = match value {
            Value::Map(map) => match map.get(key) {
                Some(v) => Value::Str(v.clone()),
                None => return Err(TemplateError::MissingKey(key.clone())),
            },
            other => {
                return Err(TemplateError::Exec {
                    context: format!("{context}.{key}"),
                    message: format!("can't evaluate field {key} in type {}", other.type_name()),
                });
            }
        };
    }
    Ok(value)
}

fn call_function(name: &str, args: Vec<Value>, model: &QueryModel) -> Result<Value, TemplateError> {
    let model_value = match name {
        "name" => Some(Value::Str(model.name.clone())),
        "namespace" => Some(Value::Str(model.namespace.clone())),
        "target" => Some(Value::Str(model.target.clone())),
        "service" => Some(Value::Str(model.service.clone())),
        "ingress" => Some(Value::Str(model.ingress.clone())),
        "route" => Some(Value::Str(model.route.clone())),
        "interval" => Some(Value::Str(model.interval.clone())),
        "variables" => Some(Value::Map(model.variables.clone())),
        _ => None,
    };
    if let Some(value) = model_value {
        if !args.is_empty() {
            return Err(TemplateError::Exec {
                context: name.to_string(),
                message: format!("wrong number of args for {name}: want 0 got {}", args.len()),
            });
        }
        return Ok(value);
    }
    match name {
        "printf" => {
            let mut args = args.into_iter();
            let format = match args.next() {
                Some(Value::Str(f)) => f,
                Some(other) => {
                    return Err(TemplateError::Exec {
                        context: "printf".to_string(),
                        message: format!(
                            "wrong type for value; expected string; got {}",
                            other.type_name()
                        ),
                    });
                }
                None => {
                    return Err(TemplateError::Exec {
                        context: "printf".to_string(),
                        message: "wrong number of args for printf: want at least 1 got 0"
                            .to_string(),
                    });
                }
            };
            Ok(Value::Str(go_sprintf(&format, &args.collect::<Vec<_>>())))
        }
        "print" => Ok(Value::Str(go_sprint(&args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::to_go_string).collect();
            Ok(Value::Str(format!("{}\n", parts.join(" "))))
        }
        "urlquery" => Ok(Value::Str(query_escape(&go_sprint(&args)))),
        "len" => match args.as_slice() {
            [Value::Str(s)] => Ok(Value::Int(s.len() as i64)),
            [Value::Map(m)] => Ok(Value::Int(m.len() as i64)),
            [other] => Err(TemplateError::Exec {
                context: "len".to_string(),
                message: format!("len of type {}", other.type_name()),
            }),
            _ => Err(TemplateError::Exec {
                context: "len".to_string(),
                message: format!("wrong number of args for len: want 1 got {}", args.len()),
            }),
        },
        "index" => {
            let mut args = args.into_iter();
            let Some(mut value) = args.next() else {
                return Err(TemplateError::Exec {
                    context: "index".to_string(),
                    message: "wrong number of args for index: want at least 1 got 0".to_string(),
                });
            };
            for key in args {
                value = match (value, key) {
                    (Value::Map(map), Value::Str(key)) => match map.get(&key) {
                        Some(v) => Value::Str(v.clone()),
                        None => return Err(TemplateError::MissingKey(key)),
                    },
                    (v, k) => {
                        return Err(TemplateError::Exec {
                            context: "index".to_string(),
                            message: format!(
                                "can't index item of type {} with {}",
                                v.type_name(),
                                k.type_name()
                            ),
                        });
                    }
                };
            }
            Ok(value)
        }
        "and" | "or" | "not" | "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "call" | "html" | "js"
        | "slice" => Err(TemplateError::Unsupported {
            offset: 0,
            construct: name.to_string(),
        }),
        other => Err(TemplateError::UnknownFunction(other.to_string())),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither side is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            let prev_is_str = matches!(args[i - 1], Value::Str(_));
            let is_str = matches!(arg, Value::Str(_));
            if !prev_is_str && !is_str {
                out.push(' ');
            }
        }
        out.push_str(&arg.to_go_string());
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs queries use: `%s %v %d %q %f %g %x %%`, with width and
/// precision; mismatches are printed the Go way (`%!d(string=x)`, `%!s(MISSING)`).
fn go_sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if matches!(f, '-' | '+' | '#' | ' ' | '0') {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() {
                width.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    p.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next_arg += 1;
        let bad = |arg: &Value| format!("%!{verb}({}={})", arg.type_name(), arg.to_go_string());
        let text = match (verb, arg) {
            ('s' | 'v', v) => {
                let s = v.to_go_string();
                match precision {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            ('q', Value::Str(s)) => format!("{s:?}"),
            ('d', Value::Int(i)) => i.to_string(),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('f' | 'F', Value::Float(f)) => format!("{f:.*}", precision.unwrap_or(6)),
            ('f' | 'F', Value::Int(i)) => bad(&Value::Int(*i)),
            ('g', Value::Float(f)) => go_float(*f),
            ('t', Value::Bool(b)) => b.to_string(),
            (_, v) => bad(v),
        };
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len < width {
            let pad = width - len;
            if flags.contains('-') {
                out.push_str(&text);
                out.extend(std::iter::repeat_n(' ', pad));
            } else {
                let fill = if flags.contains('0') { '0' } else { ' ' };
                out.extend(std::iter::repeat_n(fill, pad));
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.to_go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn model() -> QueryModel {
        QueryModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ing".into(),
            route: "podinfo-route".into(),
            interval: "1m".into(),
            variables: BTreeMap::from([("direction".into(), "inbound".into())]),
        }
    }

    fn r(t: &str) -> String {
        render(t, &model()).unwrap()
    }

    #[test]
    fn functions_with_any_spacing() {
        assert_eq!(
            r("{{ namespace }}/{{target}}/{{  interval  }}"),
            "test/podinfo/1m"
        );
        assert_eq!(
            r("{{ name }} {{ service }} {{ ingress }} {{ route }}"),
            "podinfo podinfo-svc podinfo-ing podinfo-route"
        );
        assert_eq!(r("no actions at all"), "no actions at all");
        assert_eq!(r(""), "");
    }

    #[test]
    fn variables_map_access() {
        assert_eq!(r(r#"dir="{{ variables.direction }}""#), r#"dir="inbound""#);
        assert_eq!(r(r#"{{ index variables "direction" }}"#), "inbound");
        assert_eq!(
            render("{{ variables.missing }}", &model()).unwrap_err(),
            TemplateError::MissingKey("missing".into())
        );
        assert_eq!(
            render(r#"{{ index variables "nope" }}"#, &model()).unwrap_err(),
            TemplateError::MissingKey("nope".into())
        );
    }

    #[test]
    fn trim_markers() {
        assert_eq!(r("a  \n {{- namespace -}} \n  b"), "atestb");
        assert_eq!(r("a {{- namespace }} b"), "atest b");
        assert_eq!(r("a {{ namespace -}} b"), "a testb");
        // `{{-3}}` is a number, not a trim marker.
        assert_eq!(r("a {{-3}}"), "a -3");
    }

    #[test]
    fn variable_declaration_and_printf() {
        let t = r#"{{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}route=~"{{ $route }}""#;
        assert_eq!(
            r(t),
            r#"route=~"kube(ew)?_test__podinfo-ing_canary__.*__podinfo-svc_canary(_[0-9]+)?""#
        );
        assert_eq!(
            r("{{ $x := namespace }}{{ $x = target }}{{ $x }}"),
            "podinfo"
        );
        assert_eq!(
            render("{{ $nope }}", &model()).unwrap_err(),
            TemplateError::UndefinedVariable("$nope".into())
        );
    }

    #[test]
    fn pipelines_and_parens() {
        assert_eq!(r(r#"{{ namespace | printf "%s-x" }}"#), "test-x");
        assert_eq!(
            r(r#"{{ printf "%s/%s" (namespace) target }}"#),
            "test/podinfo"
        );
        assert_eq!(r(r#"{{ "a b&c" | urlquery }}"#), "a+b%26c");
        assert_eq!(r(r#"{{ len namespace }}"#), "4");
        assert_eq!(r(r#"{{ print 1 2 "x" 3 }}"#), "1 2x3");
        assert_eq!(
            r(r#"{{ printf "%d%% %s %v" 5 }}"#),
            "5% %!s(MISSING) %!v(MISSING)"
        );
        assert_eq!(
            r(r#"{{ printf "%05.1f|%-4s|%q" 3.14159 "ab" "c" }}"#),
            r#"003.1|ab  |"c""#
        );
        assert_eq!(r(r#"{{ printf "%s" "a" "b" }}"#), "a%!(EXTRA string=b)");
        assert_eq!(r("{{/* a comment */}}x"), "x");
        assert_eq!(r(r#"{{ "}}" }}"#), "}}");
    }

    #[test]
    fn errors_name_the_construct() {
        let m = model();
        match render("{{ if namespace }}x{{ end }}", &m).unwrap_err() {
            TemplateError::Unsupported { construct, .. } => assert_eq!(construct, "if"),
            e => panic!("{e}"),
        }
        match render("{{ .namespace }}", &m).unwrap_err() {
            TemplateError::Unsupported { construct, .. } => assert_eq!(construct, ".namespace"),
            e => panic!("{e}"),
        }
        assert_eq!(
            render("{{ nmespace }}", &m).unwrap_err(),
            TemplateError::UnknownFunction("nmespace".into())
        );
        assert!(matches!(
            render("{{ namespace ", &m).unwrap_err(),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            render(r#"{{ "abc }}"#, &m).unwrap_err(),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            render("{{ }}", &m).unwrap_err(),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            render("{{ namespace target }}", &m).unwrap_err(),
            TemplateError::Exec { .. }
        ));
        assert!(matches!(
            render("{{ namespace.x }}", &m).unwrap_err(),
            TemplateError::Exec { .. }
        ));
        assert!(matches!(
            render("{{ (namespace }}", &m).unwrap_err(),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            render("{{ eq 1 1 }}", &m).unwrap_err(),
            TemplateError::Unsupported { .. }
        ));
        let msg = render("{{ range $x := variables }}{{ end }}", &m)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"range\""), "{msg}");
    }

    #[test]
    fn whitespace_collapse_and_skipper() {
        assert_eq!(
            collapse_whitespace("  sum(\n\trate(x[1m])\n)  \n"),
            "sum( rate(x[1m]) )"
        );
        assert_eq!(skipper_sanitize("my-app.v1/x"), "my_app_v1_x");
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(99.0), "99");
        assert_eq!(go_float(99.5), "99.5");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e21), "1e+21");
    }

    #[test]
    fn seed_not_found_percentage_template() {
        let q = "100 - sum(\n    rate(\n        istio_requests_total{\n          reporter=\"destination\",\n          destination_workload_namespace=\"{{ namespace }}\",\n          destination_workload=\"{{ target }}\",\n          response_code!=\"404\"\n        }[{{ interval }}]\n    )\n)\n/\nsum(\n    rate(\n        istio_requests_total{\n          reporter=\"destination\",\n          destination_workload_namespace=\"{{ namespace }}\",\n          destination_workload=\"{{ target }}\"\n        }[{{ interval }}]\n    )\n) * 100\n";
        assert_eq!(
            collapse_whitespace(&r(q)),
            "100 - sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=\"podinfo\", response_code!=\"404\" }[1m] ) ) / sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=\"podinfo\" }[1m] ) ) * 100"
        );
    }
}
