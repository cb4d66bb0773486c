//! Serin's API: Flagger's `flagger.app` kinds (Canary, MetricTemplate, AlertProvider), the
//! routing [`provider::Provider`], defaults, validation and the generated CRDs; plus the types of
//! the foreign objects routers write ([`apis`]).

pub mod alert_provider;
pub mod analysis;
pub mod apis;
pub mod canary;
pub mod comparison;
pub mod crd;
pub mod decision;
pub mod duration;
pub mod json;
pub mod manifest;

pub mod metric_template;
pub mod provider;
pub mod request;
pub mod schema;
pub mod service;
pub mod status;
pub mod structural;
pub mod validation;

pub use alert_provider::{AlertProvider, AlertProviderSpec};
pub use analysis::{CanaryAnalysis, CanaryMetric, CanaryWebhook, HookType, Strategy};
pub use canary::{Canary, CanarySpec};
pub use metric_template::{MetricTemplate, MetricTemplateSpec};
pub use provider::Provider;
pub use status::{CanaryPhase, CanaryStatus};

/// The API group of Serin's (and Flagger's) kinds.
pub const GROUP: &str = "flagger.app";
/// The stored version.
pub const VERSION: &str = "v1beta1";
/// Older version still served with the same schema, so manifests written for it apply.
pub const LEGACY_VERSION: &str = "v1alpha3";
