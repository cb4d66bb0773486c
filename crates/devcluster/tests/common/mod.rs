#![allow(clippy::unwrap_used, dead_code)]
//! Helpers shared by the integration tests.

use std::time::Duration;

use devcluster::{Config, DevCluster};

pub async fn cluster() -> DevCluster {
    DevCluster::start_with(Config {
        ready_delay: Duration::from_millis(200),
        ..Config::default()
    })
    .await
    .unwrap()
}

/// Polls `f` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
