//! Optional leader election (Flagger's `-enable-leader-election`): a coordination.k8s.io/v1
//! Lease named `flagger-leader-election`, held by `<hostname>_<random>`. Only the leader runs
//! the controller; a leader that cannot renew its lease within the renew deadline, or finds it
//! taken, has lost leadership and the process exits with status 1 (as Flagger does). On a
//! graceful shutdown the lease is released so another replica takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// Flagger's lease name.
pub const LEASE_NAME: &str = "flagger-leader-election";

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The lease was taken by someone else or could not be renewed in time.
    #[error("leader election lost: {0}")]
    Lost(String),
}

/// Lease timing (Flagger: 60 s lease, 15 s renew deadline, 5 s retry period).
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Flagger's timing with identity `<hostname>_<random>`.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: LEASE_NAME.to_string(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(60),
            renew_deadline: Duration::from_secs(15),
            retry_period: Duration::from_secs(5),
        }
    }
}

/// The host name (`HOSTNAME`, else `/etc/hostname`, else `serin`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "serin".to_string())
}

/// `<hostname>_<random uuid-like hex>`.
pub fn default_identity() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = Timestamp::now().as_nanosecond();
        bytes = nanos.to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}_{}-{}-{}-{}-{}",
        hostname(),
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Resolves once `rx` says stop (or its sender is gone).
async fn stop_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// One participant of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaderConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// One attempt to acquire or renew the lease: `Ok(true)` when we hold it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let me = &self.config.identity;
        let duration = seconds(self.config.lease_duration);
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == *me;
        if !held_by_me && !holder.is_empty() {
            let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(duration));
            let expires = spec
                .renew_time
                .as_ref()
                .map(|t| t.0 + SignedDuration::from_secs(held_for));
            if expires.is_some_and(|e| e > now) {
                return Ok(false);
            }
        }
        let mut new_spec = spec.clone();
        new_spec.holder_identity = Some(me.clone());
        new_spec.lease_duration_seconds = Some(duration);
        new_spec.renew_time = Some(MicroTime(now));
        if !held_by_me {
            new_spec.acquire_time = Some(MicroTime(now));
            new_spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        let mut updated = lease;
        updated.spec = Some(new_spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until we hold the lease (`true`) or `shutdown` fired first (`false`).
    pub async fn acquire(&self, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        tracing::info!(
            "attempting to acquire leader lease {}/{}...",
            self.config.namespace,
            self.config.name
        );
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(
                        "successfully acquired lease {}/{}",
                        self.config.namespace,
                        self.config.name
                    );
                    return true;
                }
                Ok(false) => {}
                Err(e) => tracing::error!(
                    "error retrieving resource lock: {}",
                    crate::k8s::error::describe(&e)
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = stop_requested(shutdown) => return false,
            }
        }
    }

    /// Renews the lease every retry period until `shutdown` (then returns `Ok`; the caller
    /// stops its work and [`LeaderElector::release`]s the lease) or until leadership is lost.
    pub async fn hold(
        &self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), LeaderError> {
        let mut last_renew = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = stop_requested(shutdown) => return Ok(()),
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => {
                    return Err(LeaderError::Lost(format!(
                        "lease {}/{} is held by another instance",
                        self.config.namespace, self.config.name
                    )));
                }
                Err(e) => {
                    tracing::error!("failed to renew lease: {}", crate::k8s::error::describe(&e));
                    if last_renew.elapsed() > self.config.renew_deadline {
                        return Err(LeaderError::Lost(format!(
                            "failed to renew lease {}/{} within {}s",
                            self.config.namespace,
                            self.config.name,
                            self.config.renew_deadline.as_secs()
                        )));
                    }
                }
            }
        }
    }

    /// Gives the lease up (holder cleared, 1 s duration) if we still hold it.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(
                "released lease {}/{}",
                self.config.namespace,
                self.config.name
            ),
            Err(e) => tracing::warn!(
                "failed to release lease: {}",
                crate::k8s::error::describe(&e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_hostname_underscore_uuid() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        let (host, id) = a.rsplit_once('_').unwrap_or_default();
        assert_eq!(host, hostname());
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
    }
}
