//! Types of other projects' resources that Serin reads and writes: Istio, Gateway API, SMI,
//! Knative Serving.
//!
//! Serin never replaces a foreign object built from a trimmed copy of its type. Every struct here
//! keeps the fields it does not model in an `extra` map (flattened, left out of generated schemas),
//! so a read-modify-write round trip preserves whatever a user or another controller set.

pub mod gatewayapi;
pub mod istio;
pub mod knative;
pub mod smi;

use std::collections::BTreeMap;

/// Fields of a foreign object that Serin does not model, kept verbatim.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// Declares a namespaced third-party resource type with `apiVersion`, `kind`, `metadata`, `spec`
/// and an optional `status`, and implements [`kube::Resource`] for it.
macro_rules! third_party_resource {
    (
        $(#[$meta:meta])*
        $name:ident {
            spec: $spec:ty,
            status: $status:ty,
            group: $group:literal,
            version: $version:literal,
            kind: $kind:literal,
            plural: $plural:literal $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub api_version: String,
            pub kind: String,
            #[serde(default)]
            pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            #[serde(default)]
            pub spec: $spec,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $name {
            /// A new object with the given name and spec (`apiVersion` and `kind` filled in).
            pub fn new(name: &str, spec: $spec) -> Self {
                Self {
                    api_version: concat!($group, "/", $version).to_string(),
                    kind: $kind.to_string(),
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_string()),
                        ..Default::default()
                    },
                    spec,
                    status: None,
                }
            }
        }

        impl kube::Resource for $name {
            type DynamicType = ();
            type Scope = kube::core::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
                concat!($group, "/", $version).into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use third_party_resource;
