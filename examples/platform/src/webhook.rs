//! `knative webhook`: the validating and defaulting admission webhooks of the Serving kinds,
//! served over HTTPS, optionally registered with the cluster of `$KUBECONFIG`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use knative_serving::webhook::{Registration, Webhook, WebhookServer};

/// Arguments of `knative webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to serve HTTPS (`/validate` and `/default`).
    #[arg(long, default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// The server certificate chain (PEM). Without it, a CA and a certificate are generated
    /// at start for the names of `--self-signed-name`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The CA bundle (PEM) that signed `--tls-cert`, registered as the webhooks' `caBundle`.
    #[arg(long)]
    ca_bundle: Option<std::path::PathBuf>,
    /// A DNS name or IP address of the generated certificate (repeatable; default
    /// `127.0.0.1` and `localhost`).
    #[arg(long = "self-signed-name")]
    self_signed_names: Vec<String>,
    /// Register the webhooks with the API server, reaching them at this base URL
    /// (`https://host:port`).
    #[arg(long, conflicts_with = "register_service")]
    register_url: Option<String>,
    /// Register the webhooks with the API server, reaching them through the Kubernetes Service
    /// `NAMESPACE/NAME:PORT`.
    #[arg(long)]
    register_service: Option<String>,
    /// Only objects in namespaces with this label (`key=value`) go through the webhooks.
    #[arg(long, value_parser = parse_label)]
    namespace_selector: Option<(String, String)>,
    /// Name suffix of the webhook configurations (default: Knative's names), so that several
    /// webhooks can be registered side by side.
    #[arg(long)]
    registration_suffix: Option<String>,
    /// Delete the webhook configurations again on SIGTERM/Ctrl-C. Off by default, as in
    /// Knative: the API server then refuses Knative objects until a webhook is back.
    #[arg(long)]
    unregister_on_exit: bool,
}

fn parse_label(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {value:?}"))
}

/// Runs `knative webhook` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let (tls, ca_pem) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read(cert).with_context(|| format!("reading {cert:?}"))?;
            let key_pem = std::fs::read(key).with_context(|| format!("reading {key:?}"))?;
            let ca_pem = match &args.ca_bundle {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?
                }
                None => String::from_utf8_lossy(&cert_pem).into_owned(),
            };
            (
                knative_serving::webhook::tls_config(&cert_pem, &key_pem)?,
                ca_pem,
            )
        }
        _ => {
            let names: Vec<&str> = if args.self_signed_names.is_empty() {
                vec!["127.0.0.1", "localhost"]
            } else {
                args.self_signed_names.iter().map(String::as_str).collect()
            };
            let certs = knative_serving::webhook::self_signed(&names)?;
            (certs.tls_config()?, certs.ca_pem)
        }
    };

    let registration = registration(&args, &ca_pem)?;
    let client = match &registration {
        Some(_) => Some(kube::Client::try_default().await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        WebhookServer::new(Webhook::default(), tls)
            .serve(listener, knative_core::signal::shutdown()),
    );
    if let (Some(registration), Some(client)) = (&registration, &client) {
        registration
            .apply(client)
            .await
            .context("registering the webhooks")?;
        tracing::info!(
            validating = %registration.validating_name,
            defaulting = %registration.defaulting_name,
            "registered the webhooks"
        );
    }
    tracing::info!(%addr, "serving the admission webhooks");
    server.await??;
    if args.unregister_on_exit
        && let (Some(registration), Some(client)) = (&registration, &client)
    {
        registration
            .delete(client)
            .await
            .context("unregistering the webhooks")?;
        tracing::info!("unregistered the webhooks");
    }
    Ok(())
}

fn registration(args: &Args, ca_pem: &str) -> anyhow::Result<Option<Registration>> {
    let mut registration = if let Some(url) = &args.register_url {
        Registration::url(url, ca_pem)
    } else if let Some(service) = &args.register_service {
        let (namespace, rest) = service
            .split_once('/')
            .context("--register-service wants NAMESPACE/NAME:PORT")?;
        let (name, port) = rest
            .split_once(':')
            .context("--register-service wants NAMESPACE/NAME:PORT")?;
        let port = port.parse().context("--register-service: bad port")?;
        Registration::service(namespace, name, port, ca_pem)
    } else {
        return Ok(None);
    };
    if let Some(suffix) = &args.registration_suffix {
        registration.validating_name = format!("{}.{suffix}", registration.validating_name);
        registration.defaulting_name = format!("{}.{suffix}", registration.defaulting_name);
    }
    if let Some((key, value)) = &args.namespace_selector {
        registration.namespace_selector = Some(LabelSelector {
            match_labels: Some([(key.clone(), value.clone())].into()),
            ..LabelSelector::default()
        });
    }
    Ok(Some(registration))
}
