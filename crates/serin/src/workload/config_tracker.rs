//! ConfigMap and Secret tracking (Flagger's `ConfigTracker`): the ConfigMaps and Secrets a target
//! uses are checksummed (a change is a new revision) and copied to `<name>-primary` for the
//! primary, whose pod spec is rewritten to use the copies.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::WorkloadError;
use crate::api::Canary;
use crate::k8s::cache::{Cache, Cacheable};
use crate::k8s::meta::{
    FIELD_MANAGER, canary_id, include_by_prefix, merge_patch_diff, namespace,
    require_owner_reference,
};
use crate::workload::WorkloadConfig;

/// Annotation that excludes a ConfigMap/Secret from tracking when its value starts with `disable`.
pub const CONFIG_TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";
/// Secret types that are tracked and copied; others (docker config, service-account tokens, ...)
/// are used by the primary unchanged.
pub const TRACKED_SECRET_TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
];

/// ConfigMaps and Secrets referenced by a pod spec: name → whether every reference is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigRefs {
    pub configmaps: BTreeMap<String, bool>,
    pub secrets: BTreeMap<String, bool>,
}

impl ConfigRefs {
    fn add(map: &mut BTreeMap<String, bool>, name: &str, optional: Option<bool>) {
        if name.is_empty() {
            return;
        }
        let optional = optional.unwrap_or(false);
        map.entry(name.to_string())
            .and_modify(|o| *o = *o && optional)
            .or_insert(optional);
    }
}

/// Finds the ConfigMaps and Secrets of a pod spec: volumes (incl. projected sources) and, for
/// containers and init containers, `env[].valueFrom` and `envFrom[]`.
pub fn discover(spec: &PodSpec) -> ConfigRefs {
    let mut refs = ConfigRefs::default();
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            ConfigRefs::add(&mut refs.configmaps, &cm.name, cm.optional);
        }
        if let Some(s) = &volume.secret {
            ConfigRefs::add(
                &mut refs.secrets,
                s.secret_name.as_deref().unwrap_or_default(),
                s.optional,
            );
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(cm) = &source.config_map {
                ConfigRefs::add(&mut refs.configmaps, &cm.name, cm.optional);
            }
            if let Some(s) = &source.secret {
                ConfigRefs::add(&mut refs.secrets, &s.name, s.optional);
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        for env in container.env.iter().flatten() {
            if let Some(from) = &env.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    ConfigRefs::add(&mut refs.configmaps, &r.name, r.optional);
                }
                if let Some(r) = &from.secret_key_ref {
                    ConfigRefs::add(&mut refs.secrets, &r.name, r.optional);
                }
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                ConfigRefs::add(&mut refs.configmaps, &r.name, r.optional);
            }
            if let Some(r) = &from.secret_ref {
                ConfigRefs::add(&mut refs.secrets, &r.name, r.optional);
            }
        }
    }
    refs
}

/// The tracked ConfigMaps and Secrets of a target, as read from the API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrackedConfigs {
    pub configmaps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
}

impl TrackedConfigs {
    /// `status.trackedConfigs`: `configmap/<name>` / `secret/<name>` → checksum.
    pub fn checksums(&self) -> BTreeMap<String, String> {
        let cms = self
            .configmaps
            .iter()
            .map(|(n, cm)| (format!("configmap/{n}"), configmap_checksum(cm)));
        let secrets = self
            .secrets
            .iter()
            .map(|(n, s)| (format!("secret/{n}"), secret_checksum(s)));
        cms.chain(secrets).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.configmaps.is_empty() && self.secrets.is_empty()
    }
}

/// Whether an object opted out with `flagger.app/config-tracking: disable…`.
pub fn tracking_disabled(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_TRACKING_ANNOTATION))
        .is_some_and(|v| v.starts_with("disable"))
}

/// Whether a Secret's type is tracked (an unset type is `Opaque`).
pub fn is_tracked_secret_type(secret: &Secret) -> bool {
    match secret.type_.as_deref() {
        None | Some("") => true,
        Some(t) => TRACKED_SECRET_TYPES.contains(&t),
    }
}

/// JSON text as Go's `encoding/json` writes it: serde_json's output with `<`, `>`, `&`, U+2028 and
/// U+2029 escaped (those characters only occur inside strings).
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn checksum_of(text: &str) -> String {
    let mut hex = crate::k8s::meta::sha256_hex(text.as_bytes());
    hex.truncate(16);
    hex
}

fn data_json<T: serde::Serialize>(data: Option<&BTreeMap<String, T>>) -> Value {
    match data {
        Some(d) if !d.is_empty() => serde_json::to_value(d).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Flagger's ConfigMap checksum: SHA-256 of the Go JSON of `.data` (`null` when empty), first 16
/// hex digits. When `binaryData` is set, Serin hashes `{"binaryData":…,"data":…}` instead so that
/// binary changes are detected too.
pub fn configmap_checksum(cm: &ConfigMap) -> String {
    let data = data_json(cm.data.as_ref());
    match cm.binary_data.as_ref().filter(|b| !b.is_empty()) {
        None => checksum_of(&go_json(&data)),
        Some(binary) => checksum_of(&go_json(&json!({
            "binaryData": data_json(Some(binary)),
            "data": data,
        }))),
    }
}

/// Flagger's Secret checksum: SHA-256 of the Go JSON of `.data` (base64 values, `null` when
/// empty), first 16 hex digits.
pub fn secret_checksum(secret: &Secret) -> String {
    checksum_of(&go_json(&data_json(secret.data.as_ref())))
}

/// Rewrites every reference to a tracked ConfigMap/Secret in `spec` to its `-primary` copy.
pub fn rewrite_pod_spec(spec: &mut PodSpec, tracked: &TrackedConfigs) {
    let cm = |name: &mut String| {
        if tracked.configmaps.contains_key(name.as_str()) {
            name.push_str("-primary");
        }
    };
    let secret = |name: &mut String| {
        if tracked.secrets.contains_key(name.as_str()) {
            name.push_str("-primary");
        }
    };
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(c) = volume.config_map.as_mut() {
            cm(&mut c.name);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            secret(name);
        }
        for source in volume
            .projected
            .iter_mut()
            .flat_map(|p| p.sources.iter_mut().flatten())
        {
            if let Some(c) = source.config_map.as_mut() {
                cm(&mut c.name);
            }
            if let Some(s) = source.secret.as_mut() {
                secret(&mut s.name);
            }
        }
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        for env in container.env.iter_mut().flatten() {
            if let Some(from) = env.value_from.as_mut() {
                if let Some(r) = from.config_map_key_ref.as_mut() {
                    cm(&mut r.name);
                }
                if let Some(r) = from.secret_key_ref.as_mut() {
                    secret(&mut r.name);
                }
            }
        }
        for from in container.env_from.iter_mut().flatten() {
            if let Some(r) = from.config_map_ref.as_mut() {
                cm(&mut r.name);
            }
            if let Some(r) = from.secret_ref.as_mut() {
                secret(&mut r.name);
            }
        }
    }
}

/// Owner references of a `-primary` copy: the controller reference to the Canary plus the other
/// owners of the existing copy, demoted to non-controller.
fn copy_owner_references(owner: &OwnerReference, live: Option<&ObjectMeta>) -> Vec<OwnerReference> {
    let mut refs = vec![owner.clone()];
    for r in live
        .and_then(|m| m.owner_references.as_ref())
        .into_iter()
        .flatten()
    {
        if r.uid != owner.uid {
            refs.push(OwnerReference {
                controller: Some(false),
                ..r.clone()
            });
        }
    }
    refs
}

fn copy_meta(
    source: &ObjectMeta,
    namespace: &str,
    owner: &OwnerReference,
    live: Option<&ObjectMeta>,
    prefixes: &[String],
) -> ObjectMeta {
    let labels = include_by_prefix(source.labels.as_ref(), prefixes);
    ObjectMeta {
        name: Some(format!(
            "{}-primary",
            source.name.as_deref().unwrap_or_default()
        )),
        namespace: Some(namespace.to_string()),
        labels: (!labels.is_empty()).then_some(labels),
        owner_references: Some(copy_owner_references(owner, live)),
        ..Default::default()
    }
}

/// The `<name>-primary` copy of a ConfigMap (data, binaryData, prefix-filtered labels).
pub fn primary_configmap(
    source: &ConfigMap,
    namespace: &str,
    owner: &OwnerReference,
    live: Option<&ConfigMap>,
    prefixes: &[String],
) -> ConfigMap {
    ConfigMap {
        metadata: copy_meta(
            &source.metadata,
            namespace,
            owner,
            live.map(|l| &l.metadata),
            prefixes,
        ),
        data: source.data.clone(),
        binary_data: source.binary_data.clone(),
        ..Default::default()
    }
}

/// The `<name>-primary` copy of a Secret (type, data, prefix-filtered labels).
pub fn primary_secret(
    source: &Secret,
    namespace: &str,
    owner: &OwnerReference,
    live: Option<&Secret>,
    prefixes: &[String],
) -> Secret {
    Secret {
        metadata: copy_meta(
            &source.metadata,
            namespace,
            owner,
            live.map(|l| &l.metadata),
            prefixes,
        ),
        type_: source.type_.clone(),
        data: source.data.clone(),
        ..Default::default()
    }
}

/// The merge patch that brings an existing copy to the desired one (owned fields: labels, owner
/// references and the data fields), or `None`.
pub fn copy_patch<T: serde::Serialize>(
    live: &T,
    desired: &T,
    data_fields: &[&str],
) -> Option<Value> {
    let live = serde_json::to_value(live).unwrap_or(Value::Null);
    let desired = serde_json::to_value(desired).unwrap_or(Value::Null);
    let owned = |v: &Value| {
        let mut out = json!({
            "metadata": {
                "labels": v["metadata"].get("labels").cloned().unwrap_or(Value::Null),
                "ownerReferences": v["metadata"].get("ownerReferences").cloned().unwrap_or(Value::Null),
            }
        });
        for f in data_fields {
            out[*f] = v.get(*f).cloned().unwrap_or(Value::Null);
        }
        out
    };
    merge_patch_diff(&owned(&live), &owned(&desired))
}

/// Reads tracked configs and writes the `-primary` copies. A disabled tracker tracks nothing.
///
/// ConfigMaps are read through the [`Cache`]; Secrets always from the API server: caching them
/// would keep every Secret of the watched namespaces (tokens, certificates, credentials of
/// other applications) in the controller's memory, a cost in memory and exposure that the one
/// GET per tracked Secret and step does not justify.
#[derive(Clone)]
pub struct ConfigTracker {
    client: kube::Client,
    enabled: bool,
    include_label_prefix: Vec<String>,
    cache: Cache,
}

impl ConfigTracker {
    pub fn new(client: kube::Client, config: &WorkloadConfig) -> Self {
        Self {
            client,
            enabled: config.config_tracking,
            include_label_prefix: config.include_label_prefix.clone(),
            cache: Cache::disabled(),
        }
    }

    /// Reads and writes ConfigMaps through `cache` (Secrets stay uncached).
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// The tracked ConfigMaps and Secrets referenced by `spec` (missing optional ones are skipped,
    /// missing mandatory ones are errors; opted-out objects and untracked Secret types are left
    /// out).
    pub async fn target_configs(
        &self,
        canary: &Canary,
        spec: &PodSpec,
    ) -> Result<TrackedConfigs, WorkloadError> {
        let mut tracked = TrackedConfigs::default();
        if !self.enabled {
            return Ok(tracked);
        }
        let ns = namespace(canary);
        let refs = discover(spec);
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        for (name, optional) in &refs.configmaps {
            match self.cache.get(&cms, name).await {
                Ok(Some(cm)) => {
                    if !tracking_disabled(&cm.metadata) {
                        tracked.configmaps.insert(name.clone(), cm);
                    }
                }
                Ok(None) if *optional => {
                    tracing::info!(canary = %canary_id(canary), "configmap {name}.{ns} not found, skipping optional reference");
                }
                Ok(None) => {
                    return Err(WorkloadError::NotReady(format!(
                        "configmap {name}.{ns} get query error: configmaps \"{name}\" not found"
                    )));
                }
                Err(source) => {
                    return Err(WorkloadError::Api {
                        context: format!("configmap {name}.{ns} get query error"),
                        source,
                    });
                }
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        for (name, optional) in &refs.secrets {
            // Uncached on purpose (see the type's docs).
            match secrets.get_opt(name).await {
                Ok(Some(s)) => {
                    if !tracking_disabled(&s.metadata) && is_tracked_secret_type(&s) {
                        tracked.secrets.insert(name.clone(), s);
                    }
                }
                Ok(None) if *optional => {
                    tracing::info!(canary = %canary_id(canary), "secret {name}.{ns} not found, skipping optional reference");
                }
                Ok(None) => {
                    return Err(WorkloadError::NotReady(format!(
                        "secret {name}.{ns} get query error: secrets \"{name}\" not found"
                    )));
                }
                Err(source) => {
                    return Err(WorkloadError::Api {
                        context: format!("secret {name}.{ns} get query error"),
                        source,
                    });
                }
            }
        }
        Ok(tracked)
    }

    /// Creates or updates the `-primary` copies (writes only what differs).
    pub async fn sync_primary_configs(
        &self,
        canary: &Canary,
        tracked: &TrackedConfigs,
    ) -> Result<(), WorkloadError> {
        if tracked.is_empty() {
            return Ok(());
        }
        let ns = namespace(canary);
        let owner = require_owner_reference(canary).map_err(WorkloadError::Invalid)?;
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        for (name, cm) in &tracked.configmaps {
            let copy_name = format!("{name}-primary");
            let live =
                self.cache
                    .get(&cms, &copy_name)
                    .await
                    .map_err(|source| WorkloadError::Api {
                        context: format!("configmap {copy_name}.{ns} get query error"),
                        source,
                    })?;
            let desired =
                primary_configmap(cm, &ns, &owner, live.as_ref(), &self.include_label_prefix);
            write_copy(
                &self.cache,
                &cms,
                &copy_name,
                live.as_ref(),
                &desired,
                &CONFIGMAP_COPY,
                canary,
            )
            .await?;
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        for (name, s) in &tracked.secrets {
            let copy_name = format!("{name}-primary");
            let live = secrets
                .get_opt(&copy_name)
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!("secret {copy_name}.{ns} get query error"),
                    source,
                })?;
            let desired = primary_secret(s, &ns, &owner, live.as_ref(), &self.include_label_prefix);
            write_copy(
                &Cache::disabled(),
                &secrets,
                &copy_name,
                live.as_ref(),
                &desired,
                &SECRET_COPY,
                canary,
            )
            .await?;
        }
        Ok(())
    }
}

/// A kind of `-primary` copy: its name in messages and the fields that hold its data.
struct CopyKind {
    kind: &'static str,
    data_fields: &'static [&'static str],
}

const CONFIGMAP_COPY: CopyKind = CopyKind {
    kind: "ConfigMap",
    data_fields: &["data", "binaryData"],
};

const SECRET_COPY: CopyKind = CopyKind {
    kind: "Secret",
    data_fields: &["data", "type"],
};

async fn write_copy<K>(
    cache: &Cache,
    api: &Api<K>,
    name: &str,
    live: Option<&K>,
    desired: &K,
    copy: &CopyKind,
    canary: &Canary,
) -> Result<(), WorkloadError>
where
    K: Cacheable + serde::Serialize,
{
    let ns = namespace(canary);
    let kind = copy.kind;
    match live {
        None => {
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..Default::default()
            };
            cache
                .create(api, &pp, desired)
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!("creating {kind} {name}.{ns} failed"),
                    source,
                })?;
        }
        Some(live) => {
            let Some(patch) = copy_patch(live, desired, copy.data_fields) else {
                return Ok(());
            };
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..Default::default()
            };
            cache
                .patch(api, name, &pp, &Patch::Merge(&patch))
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!("updating {kind} {name}.{ns} failed"),
                    source,
                })?;
        }
    }
    tracing::info!(canary = %canary_id(canary), "{kind} {name} synced");
    Ok(())
}

#[cfg(test)]
mod tests;
