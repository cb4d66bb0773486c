//! [`Alerter`]: the canary's `analysis.alerts` (AlertProviders and their Secrets, filtered by
//! severity) or else the global notifier. Everything, including loading the providers, runs on
//! a spawned task: a slow or failing notifier never delays a tick.

use std::sync::Arc;

use crate::k8s;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::api::Canary;
use crate::api::alert_provider::AlertProvider;
use crate::api::analysis::{AlertSeverity, CanaryAlert};
use crate::controller::ports::Alerter;
use crate::notify::{
    self, Alert, AlertMetadata, AlertOrigin, AlertProviderInput, AnyNotifier, NotifierConfig,
    ProviderSecret, alert_accepts, alert_fields,
};

/// Sends alerts through AlertProviders read from the workload cluster or the global notifier.
#[derive(Clone)]
pub struct KubeAlerter {
    client: kube::Client,
    global: Option<Arc<AnyNotifier>>,
    cluster_name: Option<String>,
}

impl KubeAlerter {
    pub fn new(
        client: kube::Client,
        global: Option<AnyNotifier>,
        cluster_name: Option<String>,
    ) -> Self {
        Self {
            client,
            global: global.map(Arc::new),
            cluster_name,
        }
    }
}

/// The canary settings shown in alerts with metadata.
pub fn alert_metadata(canary: &Canary) -> AlertMetadata {
    let analysis = canary.spec.analysis();
    let positive = |v: Option<i32>| v.filter(|x| *x > 0).and_then(|x| u32::try_from(x).ok());
    AlertMetadata {
        kind: canary.spec.target_ref.kind.clone(),
        target: canary.spec.target_ref.name.clone(),
        namespace: canary.namespace().unwrap_or_default(),
        threshold: i64::from(analysis.map(|a| a.threshold()).unwrap_or(1)),
        progress_deadline_seconds: i64::from(canary.spec.progress_deadline_seconds()),
        step_weight: positive(analysis.and_then(|a| a.step_weight)),
        step_weights: analysis
            .map(|a| {
                a.step_weights()
                    .iter()
                    .filter_map(|w| u32::try_from(*w).ok())
                    .collect()
            })
            .unwrap_or_default(),
        max_weight: analysis
            .and_then(|a| a.max_weight)
            .and_then(|w| u32::try_from(w).ok()),
        has_match: analysis.is_some_and(|a| !a.matches().is_empty()),
        iterations: positive(analysis.and_then(|a| a.iterations)),
    }
}

/// Builds the notifier of one `analysis.alerts` entry (AlertProvider and Secret).
async fn provider_notifier(
    client: &kube::Client,
    canary_namespace: &str,
    alert: &CanaryAlert,
) -> Result<(AnyNotifier, AlertOrigin), String> {
    let name = &alert.provider_ref.name;
    let namespace = alert
        .provider_ref
        .namespace_or(canary_namespace)
        .to_string();
    let providers = Api::<AlertProvider>::namespaced(client.clone(), &namespace);
    let provider =
        k8s::error::retry_transient(&k8s::error::READ_RETRY_DELAYS, || providers.get(name))
            .await
            .map_err(|e| {
                format!(
                    "alert provider {name}.{namespace} error: {}",
                    k8s::error::describe(&e)
                )
            })?;
    let secret_data = match &provider.spec.secret_ref {
        Some(secret_ref) => {
            let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
            let secret = k8s::error::retry_transient(&k8s::error::READ_RETRY_DELAYS, || {
                secrets.get(&secret_ref.name)
            })
            .await
            .map_err(|e| {
                format!(
                    "alert provider {name}.{namespace} secretRef {} error: {}",
                    secret_ref.name,
                    k8s::error::describe(&e)
                )
            })?;
            let data = secret.data.unwrap_or_default();
            let text = |key: &str| {
                data.get(key)
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
            };
            Some((text("address"), text("token")))
        }
        None => None,
    };
    let input = AlertProviderInput {
        kind: &provider.spec.provider_type,
        address: provider.spec.address.as_deref(),
        channel: provider.spec.channel.as_deref(),
        username: provider.spec.username.as_deref(),
        proxy: provider.spec.proxy.as_deref(),
        secret: secret_data.as_ref().map(|(address, token)| ProviderSecret {
            address: address.as_deref(),
            token: token.as_deref(),
        }),
    };
    let config = NotifierConfig::from_alert_provider(&input)
        .map_err(|e| format!("alert provider {name}.{namespace} error: {e}"))?;
    let notifier = notify::build(&config)
        .map_err(|e| format!("alert provider {name}.{namespace} error: {e}"))?;
    Ok((
        notifier,
        AlertOrigin::Provider {
            name: name.clone(),
            namespace,
        },
    ))
}

#[async_trait]
impl Alerter for KubeAlerter {
    async fn alert(
        &self,
        canary: &Canary,
        message: &str,
        with_metadata: bool,
        severity: AlertSeverity,
    ) {
        let metadata = alert_metadata(canary);
        let namespace = canary.namespace().unwrap_or_default();
        let alert = Alert {
            canary: canary.name_any(),
            namespace: namespace.clone(),
            message: message.to_string(),
            fields: alert_fields(
                self.cluster_name.as_deref(),
                with_metadata.then_some(&metadata),
            ),
            severity,
        };
        let alerts: Vec<CanaryAlert> = canary
            .spec
            .analysis()
            .map(|a| a.alerts().to_vec())
            .unwrap_or_default();
        if alerts.is_empty() {
            if let Some(global) = self.global.clone() {
                tokio::spawn(async move {
                    notify::deliver(global.as_ref(), &alert, &AlertOrigin::Global).await;
                });
            }
            return;
        }
        let client = self.client.clone();
        tokio::spawn(async move {
            for entry in &alerts {
                let Some(wanted) = entry.severity() else {
                    continue;
                };
                if !alert_accepts(wanted, severity) {
                    continue;
                }
                match provider_notifier(&client, &namespace, entry).await {
                    Ok((notifier, origin)) => {
                        notify::deliver(&notifier, &alert, &origin).await;
                    }
                    Err(e) => tracing::error!(canary = %alert.subject(), "{e}"),
                }
            }
        });
    }
}
