//! Parsing: the template text into text and action nodes (lexer and pipeline parser).

use super::TemplateError;
use super::value::Value;

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Action),
}

#[derive(Debug)]
pub(super) struct Action {
    /// `$x :=` (true) or `$x =` (false).
    pub(super) assign: Option<(String, bool)>,
    pub(super) pipeline: Pipeline,
}

#[derive(Debug)]
pub(super) struct Pipeline {
    pub(super) commands: Vec<Command>,
}

#[derive(Debug)]
pub(super) struct Command {
    pub(super) offset: usize,
    pub(super) operands: Vec<Operand>,
}

#[derive(Debug)]
pub(super) enum Operand {
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
pub(super) enum Token {
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

pub(super) const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

pub(super) fn parse(template: &str) -> Result<Vec<Node>, TemplateError> {
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

pub(super) fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Finds the end of an action body: returns (body, right-trim marker, bytes consumed incl. `}}`).
/// Skips `}}` inside string literals.
pub(super) fn find_action_end(inner: &str) -> Option<(&str, bool, usize)> {
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

pub(super) fn lex(body: &str, base: usize) -> Result<Vec<(usize, Token)>, TemplateError> {
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

pub(super) struct Parser {
    pub(super) tokens: Vec<(usize, Token)>,
    pub(super) pos: usize,
    pub(super) end_offset: usize,
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

pub(super) fn parse_action(body: &str, base: usize) -> Result<Action, TemplateError> {
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
