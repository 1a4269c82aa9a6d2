//! An embedded Kubernetes-compatible API server.
//!
//! It speaks the Kubernetes REST protocol well enough that `kube::Client`, kube-runtime
//! controllers and `kubectl` work against it unchanged: discovery, create/get/list/watch/
//! update/patch/delete with resourceVersions, bookmarks, the `/status` subresource,
//! generation, finalizers, owner-reference garbage collection, label and field selectors,
//! `Status` errors, and CustomResourceDefinitions that serve their kinds at once. State lives
//! in a data directory (a redb file) or in memory. `README.md` lists where it differs from
//! kube-apiserver on purpose.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use knative_apiserver::ApiServer;
//!
//! let server = ApiServer::builder().in_memory().start().await?;
//! let client = server.client();
//! // ... use `client` as against any cluster ...
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod error;
mod object;
mod patch;
mod resources;
mod selector;
mod server;
mod store;

pub use error::{ApiError, Details};

use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Why the server could not start or write its kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory cannot be opened or read.
    #[error("{0}")]
    Store(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The kubeconfig cannot be written.
    #[error("cannot write the kubeconfig {path:?}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The entry point: `ApiServer::builder()`.
#[derive(Debug)]
pub struct ApiServer;

impl ApiServer {
    /// A builder for an in-memory server on a free loopback port.
    pub fn builder() -> Builder {
        Builder {
            data_dir: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Duration::from_secs(10),
            history_capacity: 10_000,
            kubeconfig: None,
        }
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Builder {
    data_dir: Option<PathBuf>,
    bind: SocketAddr,
    bookmark_interval: Duration,
    history_capacity: usize,
    kubeconfig: Option<PathBuf>,
}

impl Builder {
    /// Keeps state in `dir` (created if missing); a restart with the same directory finds
    /// every object and continues the resourceVersion sequence.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Keeps state in memory only (the default).
    pub fn in_memory(mut self) -> Self {
        self.data_dir = None;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`: a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How often an idle watch that asked for bookmarks gets one (default 10 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How many past changes are kept for watches that resume from a resourceVersion
    /// (default 10,000); older resourceVersions get 410 Gone.
    pub fn history_capacity(mut self, changes: usize) -> Self {
        self.history_capacity = changes.max(1);
        self
    }

    /// Writes a kubeconfig for the server to `path` once it listens.
    pub fn write_kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Opens the store, listens, and serves in the background.
    pub async fn start(self) -> Result<RunningApiServer, Error> {
        let dir = self.data_dir.clone();
        let capacity = self.history_capacity;
        let store = match dir {
            // Opening a redb file reads and may repair it: keep that off the async threads.
            Some(dir) => {
                tokio::task::spawn_blocking(move || store::Store::open(Some(&dir), capacity))
                    .await
                    .map_err(|e| Error::Store(e.to_string()))?
            }
            None => store::Store::open(None, capacity),
        }
        .map_err(Error::Store)?;
        let listener = TcpListener::bind(self.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: self.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: self.bind,
            source,
        })?;
        let server = Arc::new(server::Server {
            store: Arc::new(store),
            addr,
            bookmark_interval: self.bookmark_interval,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, server, stopped));
        let running = RunningApiServer {
            addr,
            stop,
            task: Some(task),
        };
        if let Some(path) = &self.kubeconfig {
            running.write_kubeconfig(path)?;
        }
        tracing::info!(%addr, data_dir = ?self.data_dir, "API server listening");
        Ok(running)
    }
}

/// A server that is listening. Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct RunningApiServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningApiServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context (`knative-local`) points at this server.
    pub fn kubeconfig(&self) -> Kubeconfig {
        const NAME: &str = "knative-local";
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: NAME.into(),
                cluster: Some(Cluster {
                    server: Some(self.url()),
                    ..Cluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: NAME.into(),
                auth_info: Some(AuthInfo::default()),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: NAME.into(),
                context: Some(Context {
                    cluster: NAME.into(),
                    user: Some(NAME.into()),
                    namespace: Some("default".into()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(NAME.into()),
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            ..Kubeconfig::default()
        }
    }

    /// Writes [`Self::kubeconfig`] as YAML to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        let error = |source| Error::Kubeconfig {
            path: path.to_path_buf(),
            source,
        };
        let yaml = serde_yaml::to_string(&self.kubeconfig())
            .map_err(|e| error(std::io::Error::other(e)))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        std::fs::write(path, yaml).map_err(error)
    }

    /// A client for this server (default namespace `default`): plain HTTP, no TLS or
    /// credentials to set up, so it is ready in microseconds (a client built from the
    /// kubeconfig works the same but loads the system's certificates first).
    ///
    /// # Panics
    /// Outside a tokio runtime (the client spawns its connection buffer there).
    pub fn client(&self) -> kube::Client {
        use kube::client::ConfigExt;
        let url = self
            .url()
            .parse()
            .expect("an http URL of a socket address is a valid URI");
        let config = kube::Config::new(url);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<kube::client::Body>();
        let service = tower::ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .service(http);
        kube::Client::new(service, "default")
    }

    /// Stops listening, closes every connection (watches end) and closes the store.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "the API server task failed");
        }
    }
}

impl Drop for RunningApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve(
    listener: TcpListener,
    server: Arc<server::Server>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let server = server.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let server = server.clone();
                            async move { Ok::<_, std::convert::Infallible>(server.handle(request).await) }
                        });
                        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped.changed() => break,
        }
    }
    connections.shutdown().await;
}
