//! The likely cause of a failed pre-flight query, in plain words: a pure function of what went
//! wrong and the rendered query.

use super::Problem;

/// What the classifier knows about the query that failed.
#[derive(Clone, Copy, Debug)]
pub struct QueryFacts<'a> {
    /// The rendered query, when rendering got that far.
    pub query: Option<&'a str>,
    /// The Canary's namespace (the primary's too).
    pub namespace: &'a str,
    /// `<target>-primary`.
    pub primary: &'a str,
    /// The metric's query window (`1m`).
    pub interval: &'a str,
}

/// One label matcher of a PromQL selector: `name op "value"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub op: String,
    pub value: String,
}

impl Matcher {
    fn text(&self) -> String {
        format!("{}{}\"{}\"", self.name, self.op, self.value)
    }
}

/// The likely cause of `problem`, e.g. `no traffic yet: podinfo-primary.test received no
/// requests in the last 1m`.
pub fn likely_cause(problem: &Problem, facts: &QueryFacts<'_>) -> String {
    match problem {
        Problem::Unreachable(detail) => {
            format!(
                "the metrics provider is unreachable ({detail}); check its address and that it is running"
            )
        }
        Problem::Rejected(detail) if is_auth_failure(detail) => {
            format!("the metrics provider refused the credentials ({detail}); check the secret")
        }
        Problem::Rejected(detail) => format!(
            "the metrics provider rejected the query ({detail}); check its syntax and the names it uses"
        ),
        Problem::Invalid(detail) => format!("the metric cannot be queried ({detail})"),
        Problem::NoValues => no_values_cause(facts),
    }
}

/// HTTP 401 or 403 in a provider's error text.
fn is_auth_failure(detail: &str) -> bool {
    detail.contains("HTTP 401") || detail.contains("HTTP 403")
}

fn no_values_cause(facts: &QueryFacts<'_>) -> String {
    let matchers = facts.query.map(matchers).unwrap_or_default();
    let wrong_namespace = matchers.iter().find(|m| {
        m.op == "="
            && m.name.contains("namespace")
            && !m.value.is_empty()
            && m.value != facts.namespace
    });
    if let Some(m) = wrong_namespace {
        return format!(
            "wrong namespace: the query selects {} but the canary and its primary are in {}",
            m.text(),
            facts.namespace
        );
    }
    let mut cause = format!(
        "no traffic yet: {}.{} received no requests in the last {}",
        facts.primary, facts.namespace, facts.interval
    );
    let others: Vec<String> = matchers
        .iter()
        .filter(|m| m.op == "=" && !m.name.contains("namespace"))
        .filter(|m| !m.value.contains(facts.primary) && m.value != facts.namespace)
        .map(Matcher::text)
        .collect();
    if !others.is_empty() {
        cause.push_str(&format!(
            "; or a label the query requires is missing from the series: {}",
            others.join(", ")
        ));
    }
    cause
}

/// The label matchers of every selector (`{...}`) of a PromQL query, in order, without
/// repeats. Text that is not PromQL yields whatever looks like a matcher, usually nothing.
pub fn matchers(query: &str) -> Vec<Matcher> {
    let mut found: Vec<Matcher> = Vec::new();
    let mut rest = query;
    while let Some(open) = rest.find('{') {
        let body = &rest[open + 1..];
        let Some(close) = closing_brace(body) else {
            break;
        };
        for item in split_outside_quotes(&body[..close]) {
            if let Some(m) = parse_matcher(item)
                && !found.contains(&m)
            {
                found.push(m);
            }
        }
        rest = &body[close + 1..];
    }
    found
}

/// The index of the `}` closing a selector body, skipping quoted strings.
fn closing_brace(body: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn split_outside_quotes(body: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    items
}

fn parse_matcher(item: &str) -> Option<Matcher> {
    let item = item.trim();
    let name_end = item
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(item.len());
    let name = &item[..name_end];
    if name.is_empty() {
        return None;
    }
    let after = item[name_end..].trim_start();
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| after.starts_with(op))?;
    let value = after[op.len()..].trim();
    let value = value.strip_prefix('"')?.strip_suffix('"')?;
    Some(Matcher {
        name: name.to_string(),
        op: op.to_string(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISTIO: &str = r#"sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo-primary", response_code!~"5.*" }[1m] ) )"#;

    fn facts(query: &str) -> QueryFacts<'_> {
        QueryFacts {
            query: Some(query),
            namespace: "test",
            primary: "podinfo-primary",
            interval: "1m",
        }
    }

    #[test]
    fn matchers_of_every_selector() {
        let found = matchers(ISTIO);
        let texts: Vec<String> = found.iter().map(Matcher::text).collect();
        assert_eq!(
            texts,
            [
                r#"reporter="destination""#,
                r#"destination_workload_namespace="test""#,
                r#"destination_workload=~"podinfo-primary""#,
                r#"response_code!~"5.*""#,
            ]
        );
        let quoted = matchers(r#"x{path="/a,b}", code != "500"} / y{path="/a,b}"}"#);
        assert_eq!(quoted.len(), 2, "{quoted:?}");
        assert_eq!(quoted[0].value, "/a,b}");
        assert_eq!(quoted[1].op, "!=");
        assert!(matchers("avg:trace.http.request{service:podinfo}").is_empty());
    }

    #[test]
    fn no_values_with_the_canary_namespace_names_traffic_and_required_labels() {
        let cause = likely_cause(&Problem::NoValues, &facts(ISTIO));
        assert_eq!(
            cause,
            r#"no traffic yet: podinfo-primary.test received no requests in the last 1m; or a label the query requires is missing from the series: reporter="destination""#
        );
    }

    #[test]
    fn no_values_from_another_namespace_is_a_wrong_namespace() {
        let query =
            r#"sum(rate(http_requests_total{namespace="prod", pod=~"podinfo-primary-.*"}[1m]))"#;
        assert_eq!(
            likely_cause(&Problem::NoValues, &facts(query)),
            r#"wrong namespace: the query selects namespace="prod" but the canary and its primary are in test"#
        );
    }

    #[test]
    fn no_values_without_other_labels_is_no_traffic() {
        let query =
            r#"sum(rate(http_requests_total{namespace="test", pod=~"podinfo-primary-.*"}[5m]))"#;
        let f = QueryFacts {
            interval: "5m",
            ..facts(query)
        };
        assert_eq!(
            likely_cause(&Problem::NoValues, &f),
            "no traffic yet: podinfo-primary.test received no requests in the last 5m"
        );
        let unrendered = QueryFacts {
            query: None,
            ..facts("")
        };
        assert!(likely_cause(&Problem::NoValues, &unrendered).starts_with("no traffic yet"));
    }

    #[test]
    fn provider_failures_are_told_apart() {
        let f = facts(ISTIO);
        let down = likely_cause(
            &Problem::Unreachable("error sending request: connection refused".into()),
            &f,
        );
        assert!(
            down.starts_with("the metrics provider is unreachable"),
            "{down}"
        );
        let auth = likely_cause(
            &Problem::Rejected("prometheus returned HTTP 401: unauthorized".into()),
            &f,
        );
        assert!(
            auth.starts_with("the metrics provider refused the credentials"),
            "{auth}"
        );
        let bad = likely_cause(
            &Problem::Rejected("prometheus returned HTTP 400: parse error".into()),
            &f,
        );
        assert!(
            bad.starts_with("the metrics provider rejected the query"),
            "{bad}"
        );
        let invalid = likely_cause(
            &Problem::Invalid("metrictemplates.flagger.app \"x\" not found".into()),
            &f,
        );
        assert_eq!(
            invalid,
            "the metric cannot be queried (metrictemplates.flagger.app \"x\" not found)"
        );
    }
}
