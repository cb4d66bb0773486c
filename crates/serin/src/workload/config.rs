//! The controller flags the workload code depends on (`-selector-labels`,
//! `-include-label-prefix`, `-enable-config-tracking`).

use std::collections::BTreeMap;

use crate::k8s::meta::include_by_prefix;

/// Default `-selector-labels`.
pub const DEFAULT_SELECTOR_LABELS: &[&str] = &["app", "name", "app.kubernetes.io/name"];

/// Controller flags the workload code depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// `-selector-labels`: candidate selector label keys, in order of preference.
    pub selector_labels: Vec<String>,
    /// `-include-label-prefix`: label/annotation key prefixes copied to generated objects
    /// (`*` = all; an empty entry matches nothing).
    pub include_label_prefix: Vec<String>,
    /// `-enable-config-tracking`.
    pub config_tracking: bool,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            selector_labels: DEFAULT_SELECTOR_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            include_label_prefix: Vec::new(),
            config_tracking: true,
        }
    }
}

impl WorkloadConfig {
    /// Builds the configuration from the flag values as written on the command line
    /// (comma-separated lists).
    pub fn from_flags(
        selector_labels: &str,
        include_label_prefix: &str,
        config_tracking: bool,
    ) -> Self {
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        };
        Self {
            selector_labels: split(selector_labels),
            include_label_prefix: split(include_label_prefix),
            config_tracking,
        }
    }

    /// The first configured selector label present in `match_labels`, with its value.
    pub fn selector_label(
        &self,
        match_labels: Option<&BTreeMap<String, String>>,
    ) -> Option<(String, String)> {
        let labels = match_labels?;
        self.selector_labels
            .iter()
            .find_map(|key| labels.get(key).map(|v| (key.clone(), v.clone())))
    }

    /// The selector label list printed the way Go prints a string slice: `[app name x]`.
    pub fn selector_labels_display(&self) -> String {
        format!("[{}]", self.selector_labels.join(" "))
    }

    /// Labels or annotations filtered by `-include-label-prefix` (toolkit keys never pass).
    pub fn include_by_prefix(
        &self,
        map: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, String> {
        include_by_prefix(map, &self.include_label_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flags_are_split_on_commas() {
        let c = WorkloadConfig::from_flags("app, name", "", false);
        assert_eq!(c.selector_labels, vec!["app", "name"]);
        assert!(c.include_label_prefix.is_empty());
        assert!(!c.config_tracking);
        assert_eq!(
            WorkloadConfig::default().selector_labels_display(),
            "[app name app.kubernetes.io/name]"
        );
    }

    #[test]
    fn selector_label_respects_the_flag_order() {
        let c = WorkloadConfig::default();
        let labels = map(&[("name", "n"), ("app", "a")]);
        assert_eq!(
            c.selector_label(Some(&labels)),
            Some(("app".into(), "a".into()))
        );
        let labels = map(&[("app.kubernetes.io/name", "x")]);
        assert_eq!(
            c.selector_label(Some(&labels)),
            Some(("app.kubernetes.io/name".into(), "x".into()))
        );
        assert_eq!(c.selector_label(Some(&map(&[("other", "x")]))), None);
        assert_eq!(c.selector_label(None), None);
    }
}
