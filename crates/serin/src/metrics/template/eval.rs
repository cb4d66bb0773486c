//! Evaluation of parsed pipelines against a [`QueryModel`]: operands, field chains and the
//! built-in functions.

use super::parse::{Command, Operand, Pipeline};
use super::value::{Value, go_sprint, go_sprintf, query_escape};
use super::{QueryModel, TemplateError};

pub(super) fn eval_pipeline(
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

pub(super) fn eval_command(
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

pub(super) fn describe(operand: &Operand) -> String {
    match operand {
        Operand::Function { name, .. } => name.clone(),
        Operand::Variable { name, .. } => name.clone(),
        Operand::Literal(v) => format!("{:?}", v.to_go_string()),
        Operand::Paren { .. } => "(…)".to_string(),
    }
}

pub(super) fn eval_operand(
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

pub(super) fn apply_chain(
    mut value: Value,
    chain: &[String],
    context: &str,
) -> Result<Value, TemplateError> {
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

pub(super) fn call_function(
    name: &str,
    args: Vec<Value>,
    model: &QueryModel,
) -> Result<Value, TemplateError> {
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
