//! The kubeconfig the dev cluster writes for kubectl and kube-rs.

use std::io::Write;
use std::path::Path;

/// Writing the kubeconfig failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("writing kubeconfig {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A kubeconfig with one cluster, one user (bearer token) and one current context.
pub fn render(server: &str, token: &str, ca_data: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: serin-dev
  cluster:
    server: {server}
    certificate-authority-data: {ca_data}
users:
- name: serin-dev
  user:
    token: {token}
contexts:
- name: serin-dev
  context:
    cluster: serin-dev
    user: serin-dev
    namespace: default
current-context: serin-dev
preferences: {{}}
"
    )
}

/// Writes `content` to `path` atomically (a temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, content: &str) -> Result<(), KubeconfigError> {
    let err = |source| KubeconfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(content.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_atomically() {
        let dir = std::env::temp_dir().join(format!("devcluster-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config");
        write_atomic(&p, &render("https://127.0.0.1:1", "tok", "Q0E=")).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("server: https://127.0.0.1:1") && text.contains("token: tok"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
