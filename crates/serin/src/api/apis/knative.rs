//! Knative Serving `Service` and `Revision` (`serving.knative.dev/v1`): the fields the Knative
//! target and router read and write (`spec.traffic`, the revision names and traffic in `status`,
//! a revision's `Ready` condition). Everything else, the revision template first of all, stays
//! in `extra`.

use serde::{Deserialize, Serialize};

use super::{Extra, third_party_resource};

/// The annotation naming the revision that serves as the primary.
pub const PRIMARY_REVISION_ANNOTATION: &str = "flagger.app/primary-revision";

/// One entry of `spec.traffic` / `status.traffic`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// Routes to the latest ready revision (in `status.traffic` the resolved revision is in
    /// `revision_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// `tag`, `url`, `configurationName`, ...
    #[serde(flatten)]
    pub extra: Extra,
}

impl TrafficTarget {
    /// `{latestRevision: true, percent}`.
    pub fn latest(percent: i64) -> Self {
        Self {
            latest_revision: Some(true),
            percent: Some(percent),
            ..Default::default()
        }
    }

    /// `{revisionName, percent}`.
    pub fn revision(name: &str, percent: i64) -> Self {
        Self {
            revision_name: Some(name.to_string()),
            percent: Some(percent),
            ..Default::default()
        }
    }

    pub fn is_latest(&self) -> bool {
        self.latest_revision == Some(true)
    }
}

/// `spec` of a Knative Service (the revision `template` is kept in `extra`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnativeServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Vec<TrafficTarget>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A condition of a Knative resource (`Ready`, `ConfigurationsReady`, `RoutesReady`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnativeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of a Knative Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnativeServiceStatus {
    /// The `metadata.generation` Knative last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KnativeCondition>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl KnativeServiceStatus {
    /// The condition of type `type_`, if reported.
    pub fn condition(&self, type_: &str) -> Option<&KnativeCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

third_party_resource! {
    /// Knative Serving Service `serving.knative.dev/v1`.
    KnativeService {
        spec: KnativeServiceSpec,
        status: KnativeServiceStatus,
        group: "serving.knative.dev",
        version: "v1",
        kind: "Service",
        plural: "services",
    }
}

/// `status` of a Knative Revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnativeRevisionStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KnativeCondition>,
    #[serde(flatten)]
    pub extra: Extra,
}

third_party_resource! {
    /// Knative Serving Revision `serving.knative.dev/v1` (read only: its `Ready` condition).
    KnativeRevision {
        spec: Extra,
        status: KnativeRevisionStatus,
        group: "serving.knative.dev",
        version: "v1",
        kind: "Revision",
        plural: "revisions",
    }
}

impl KnativeRevision {
    /// Whether Knative reports the revision `Ready` (Flagger's `Revision.IsReady`).
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    }
}

impl KnativeService {
    /// `status.latestCreatedRevisionName`, when Knative has created a revision.
    pub fn latest_created_revision(&self) -> Option<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.latest_created_revision_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// The revision named by [`PRIMARY_REVISION_ANNOTATION`].
    pub fn primary_revision(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PRIMARY_REVISION_ANNOTATION))
            .map(String::as_str)
    }
}

/// `spec.traffic` sending `canary` percent to the latest revision and `primary` percent to the
/// revision `primary_revision`, as Flagger writes it (the latest revision first).
pub fn traffic(primary_revision: &str, primary: i64, canary: i64) -> Vec<TrafficTarget> {
    vec![
        TrafficTarget::latest(canary),
        TrafficTarget::revision(primary_revision, primary),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_fields_it_does_not_model() {
        let input = serde_json::json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "podinfo", "annotations": {"flagger.app/primary-revision": "podinfo-00001"}},
            "spec": {
                "template": {"spec": {"containers": [{"image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}},
                "traffic": [
                    {"latestRevision": true, "percent": 10, "tag": "canary"},
                    {"revisionName": "podinfo-00001", "percent": 90}
                ]
            },
            "status": {
                "latestCreatedRevisionName": "podinfo-00002",
                "latestReadyRevisionName": "podinfo-00002",
                "url": "http://podinfo.test.example.com",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "traffic": [{"latestRevision": true, "revisionName": "podinfo-00002", "percent": 10}]
            }
        });
        let svc: KnativeService = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(svc.latest_created_revision(), Some("podinfo-00002"));
        assert_eq!(svc.primary_revision(), Some("podinfo-00001"));
        assert_eq!(
            svc.status
                .as_ref()
                .unwrap()
                .condition("Ready")
                .unwrap()
                .status,
            "True"
        );
        assert!(svc.spec.traffic.as_ref().unwrap()[0].is_latest());
        assert_eq!(serde_json::to_value(&svc).unwrap(), input);
    }
}
