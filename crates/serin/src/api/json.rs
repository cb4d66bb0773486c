//! Reading Serin's kinds out of JSON that is already parsed, with the deserialiser kube's
//! client uses for every answer.
//!
//! Each `serde` deserialiser is compiled once per type it reads: a Canary's (its analysis,
//! webhooks, metrics, service and status) is hundreds of kilobytes of code, and so is each
//! Kubernetes kind's. kube reads answers and watch events from text (`serde_json::from_str`);
//! reading a Canary from a `serde_json::Value` as well compiled all of it a second time into
//! the controller, whose code pages are most of its resident memory (docs/performance.md).
//! [`from_json`] writes the value as text and reads that instead, which is also no slower
//! than decoding a `Value` tree.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` (a `serde_json::Value`, a `DynamicObject`, ...) as a `T`, read from its JSON text.
/// The error says what `serde_json::from_value` would have said: the same words, without the
/// line and column of the text, which the caller never saw.
pub fn from_json<T: DeserializeOwned>(value: &impl Serialize) -> Result<T, String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| without_position(&e))
}

/// The message of `error` without the " at line L column C" that `serde_json` adds for text.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(words) if error.line() != 0 => words.to_owned(),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Spec {
        threshold: i32,
        #[serde(default)]
        names: Vec<String>,
    }

    #[test]
    fn reads_what_from_value_reads() {
        let value = json!({"threshold": 5, "names": ["a", "b"]});
        let read: Spec = from_json(&value).expect("valid");
        assert_eq!(read, serde_json::from_value::<Spec>(value).expect("valid"));
    }

    #[test]
    fn errors_have_the_words_of_from_value() {
        for value in [
            json!({"threshold": 2_147_483_648_i64}),
            json!({"threshold": "five"}),
            json!({"names": []}),
            json!({"threshold": 1, "names": [1]}),
            json!([1, 2]),
        ] {
            let expected = serde_json::from_value::<Spec>(value.clone())
                .expect_err("invalid")
                .to_string();
            assert_eq!(
                from_json::<Spec>(&value).expect_err("invalid"),
                expected,
                "{value}"
            );
        }
    }
}
