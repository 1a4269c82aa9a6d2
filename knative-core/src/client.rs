//! Connecting to a cluster the way Knative's binaries do: an explicit kubeconfig when given,
//! else kube's defaults (`$KUBECONFIG`, `~/.kube/config`, or the Pod's service account).

use std::path::{Path, PathBuf};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig given could not be read or used.
    #[error("{}: {source}", path.display())]
    Kubeconfig {
        /// The kubeconfig given.
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No configuration was found, or no client could be built from it.
    #[error(transparent)]
    Client(#[from] kube::Error),
}

/// A client for the cluster of `kubeconfig` (its current context), else of `$KUBECONFIG`,
/// `~/.kube/config` or the Pod's service account.
///
/// # Errors
/// When the kubeconfig cannot be read or names no usable cluster, or no configuration is found.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, ConnectError> {
    let Some(path) = kubeconfig else {
        return Ok(Client::try_default().await?);
    };
    let failed = |source| ConnectError::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let file = Kubeconfig::read_from(path).map_err(failed)?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(failed)?;
    Ok(Client::try_from(config)?)
}
