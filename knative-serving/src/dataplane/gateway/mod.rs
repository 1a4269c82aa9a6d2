//! The gateway: an ingress implementation for `networking.internal.knative.dev/v1alpha1`
//! Ingress, serving HTTP/1.1 and h2c.
//!
//! Requests are routed by host (any port ignored), path prefix and exact header matches, then
//! drawn among the path's weighted splits per request; the path's and the split's
//! `appendHeaders` are added (this is how the Route sets `Knative-Serving-Namespace` and
//! `Knative-Serving-Revision` for the activator) and `rewriteHost` applied. Tag routes are
//! plain Ingress rules (a tag's host, or a `Knative-Serving-Tag` header match) and need
//! nothing more.
//!
//! The [`RouteTable`] is swapped whole ([`Gateway::set_routes`], lock-free for readers), so an
//! Ingress change never disturbs requests in flight: each request routes on the table it
//! started with. A split names a Kubernetes Service port; a [`Resolver`] turns it into an
//! endpoint: [`StaticResolver`] from a fixed map, or [`cluster::ClusterResolver`] from the
//! cluster's Services and Endpoints. [`cluster::IngressReconciler`] keeps the table in step
//! with the cluster's Ingresses and writes their status as Knative's ingress implementations
//! do (`NetworkConfigured`, `LoadBalancerReady`, hence `Ready`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use knative_serving::apis::Ingress;
//! use knative_serving::dataplane::gateway::{CompiledIngress, Gateway, RouteTable, StaticResolver};
//!
//! # async fn example(ingress: Ingress) -> std::io::Result<()> {
//! let resolver = StaticResolver::default();
//! resolver.insert("default", "hello-00001", "80", vec!["127.0.0.1:8012".parse().unwrap()]);
//! let gateway = Gateway::new(Arc::new(resolver));
//! let compiled = CompiledIngress::compile(&ingress).expect("a valid Ingress");
//! gateway.set_routes(RouteTable::new([&compiled]));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway.serve(listener, std::future::pending()).await;
//! # Ok(())
//! # }
//! ```

pub mod cluster;
mod table;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpListener;

pub use self::table::{CompiledIngress, Path, RouteMatch, RouteTable, Split};
use crate::apis::networking::v1alpha1::IngressBackend;
use crate::dataplane::activator::ResponseBody;
use crate::dataplane::activator::server;
use crate::dataplane::proxy::{Forwarder, text_response};

/// Turns the Kubernetes Service port a split names into an endpoint to send a request to.
pub trait Resolver: Send + Sync + fmt::Debug + 'static {
    /// An endpoint of `backend`, spreading requests over its endpoints; `None` when it has
    /// none ready (or is unknown).
    fn resolve(&self, backend: &IngressBackend) -> Option<SocketAddr>;
}

/// A fixed map from Service ports to endpoints, for running without a cluster.
#[derive(Debug, Default)]
pub struct StaticResolver {
    services: RwLock<HashMap<String, Vec<SocketAddr>>>,
    next: AtomicUsize,
}

impl StaticResolver {
    /// Sets the endpoints of Service `namespace/name`'s port `port` (a number or a name, as the
    /// Ingress spells it).
    pub fn insert(&self, namespace: &str, name: &str, port: &str, endpoints: Vec<SocketAddr>) {
        self.services
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{namespace}/{name}:{port}"), endpoints);
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, backend: &IngressBackend) -> Option<SocketAddr> {
        let port = match &backend.service_port {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        let key = format!(
            "{}/{}:{port}",
            backend.service_namespace, backend.service_name
        );
        let services = self.services.read().unwrap_or_else(|p| p.into_inner());
        pick(services.get(&key)?, &self.next)
    }
}

/// Round-robin over `endpoints`.
pub(crate) fn pick(endpoints: &[SocketAddr], next: &AtomicUsize) -> Option<SocketAddr> {
    if endpoints.is_empty() {
        return None;
    }
    Some(endpoints[next.fetch_add(1, Ordering::Relaxed) % endpoints.len()])
}

/// The gateway: routes by the current [`RouteTable`] and forwards to resolved endpoints.
#[derive(Debug)]
pub struct Gateway {
    routes: ArcSwap<RouteTable>,
    resolver: Arc<dyn Resolver>,
    forwarder: Forwarder,
}

impl Gateway {
    /// A gateway with no routes yet, resolving backends with `resolver`.
    pub fn new(resolver: Arc<dyn Resolver>) -> Arc<Self> {
        Self::with_forwarder(resolver, Forwarder::new())
    }

    /// Like [`new`](Self::new), forwarding with `forwarder`.
    pub fn with_forwarder(resolver: Arc<dyn Resolver>, forwarder: Forwarder) -> Arc<Self> {
        Arc::new(Self {
            routes: ArcSwap::from_pointee(RouteTable::default()),
            resolver,
            forwarder,
        })
    }

    /// Replaces the routing table; requests in flight finish on the table they started with.
    pub fn set_routes(&self, routes: RouteTable) {
        self.routes.store(Arc::new(routes));
    }

    /// The routing table in force.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Serves HTTP/1.1 and h2c on `listener` until `shutdown` resolves, then lets in-flight
    /// requests finish.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        server::serve(listener, self, shutdown).await;
    }

    /// Routes and forwards one request: `404` when no Ingress routes it, `503` when its backend
    /// has no ready endpoint, `502`/`504` when forwarding fails.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<ResponseBody> {
        let Some(host) = host_of(&req) else {
            return text(
                StatusCode::BAD_REQUEST,
                "gateway: the request names no host",
            );
        };
        let endpoint = match self.prepare(&host, &mut req) {
            Ok(endpoint) => endpoint,
            Err((status, message)) => return text(status, message),
        };
        match self.forwarder.forward(req, endpoint).await {
            Ok(response) => response.map(|body| body.map_err(Into::into).boxed_unsync()),
            Err(err) => err
                .into_response()
                .map(|b| b.map_err(|never| match never {}).boxed_unsync()),
        }
    }
}

impl Gateway {
    /// Routes `req`, adds the route's headers and resolves its backend.
    fn prepare(
        &self,
        host: &str,
        req: &mut Request<Incoming>,
    ) -> Result<SocketAddr, (StatusCode, String)> {
        let routes = self.routes.load();
        let route = routes
            .route(host, req.uri().path(), req.headers(), fastrand::f64())
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!(
                        "gateway: no route for host {host:?} and path {:?}",
                        req.uri().path()
                    ),
                )
            })?;
        let backend = &route.split.backend;
        let endpoint = self.resolver.resolve(backend).ok_or_else(|| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "gateway: service {}/{} port {} has no ready endpoint",
                    backend.service_namespace,
                    backend.service_name,
                    port_string(&backend.service_port)
                ),
            )
        })?;
        let headers = req.headers_mut();
        for (name, value) in route
            .path
            .append_headers
            .iter()
            .chain(&route.split.append_headers)
        {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(rewritten) = &route.path.rewrite_host {
            headers.insert(header::HOST, rewritten.clone());
        } else if !headers.contains_key(header::HOST)
            && let Ok(value) = HeaderValue::from_str(host)
        {
            headers.insert(header::HOST, value);
        }
        Ok(endpoint)
    }
}

impl server::Handler for Gateway {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        Gateway::handle(self, req)
    }
}

/// The `Host` header, or the authority of an HTTP/2 request.
fn host_of<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .filter(|h| !h.is_empty())
}

fn port_string(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<ResponseBody> {
    text_response(status, message).map(|b| b.map_err(|never| match never {}).boxed_unsync())
}
