//! Kubernetes `Status` error bodies with the exact `reason` strings clients compare.

use serde_json::{Value, json};

/// An error answered as a `kind: Status` body with an HTTP code and a machine-readable reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `deployments.apps` or `pods` as the real server prints a group-resource.
pub fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(group: &str, kind: &str, name: &str) -> Option<Value> {
    Some(json!({"name": name, "group": group, "kind": kind}))
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", group_resource(group, plural)),
            details: details(group, plural, name),
        }
    }

    /// 404 for a path that names no known resource.
    pub fn no_resource() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!(
                "{} \"{name}\" already exists",
                group_resource(group, plural)
            ),
            details: details(group, plural, name),
        }
    }

    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                group_resource(group, plural)
            ),
            details: details(group, plural, name),
        }
    }

    pub fn conflict_msg(group: &str, plural: &str, name: &str, msg: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Apply failed with conflicts on {} \"{name}\": {msg}",
                group_resource(group, plural)
            ),
            details: details(group, plural, name),
        }
    }

    pub fn invalid(kind: &str, name: &str, msg: &str) -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {msg}"),
            details: Some(json!({"name": name, "kind": kind})),
        }
    }

    /// 422 Invalid with one cause per field error, as `errors.NewInvalid` builds it.
    pub fn invalid_fields(
        group: &str,
        kind: &str,
        name: &str,
        errs: &[crate::schema::FieldError],
    ) -> Self {
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let joined = if all.len() == 1 {
            all.join("")
        } else {
            format!("[{}]", all.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
            .collect();
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified} \"{name}\" is invalid: {joined}"),
            details: Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
        }
    }

    /// 409 of a server-side apply with conflicts, as `NewApplyConflict` builds it.
    pub fn apply_conflict(c: &crate::apply::ApplyConflict) -> Self {
        let causes: Vec<Value> = c
            .conflicts
            .iter()
            .map(|(m, p)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p})
            })
            .collect();
        Self {
            code: 409,
            reason: "Conflict",
            message: c.to_string(),
            details: Some(json!({"causes": causes})),
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg)
    }

    pub fn method_not_allowed(msg: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", msg)
    }

    pub fn gone(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", msg)
    }

    pub fn unsupported_media(msg: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(500, "InternalError", msg)
    }

    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", msg)
    }

    /// The `Status` object as sent on the wire.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// A `Status` of success, as DELETE answers when the object is gone at once.
pub fn success(group: &str, plural: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": plural, "uid": uid},
    })
}
