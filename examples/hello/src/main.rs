//! `hello`: the function of Knative's helloworld samples, in Rust.
//!
//! Serves HTTP/1.1 on `0.0.0.0:$PORT` (default 8080) and answers every request with
//! `Hello <TARGET>!` (`$TARGET`, default `World`). Stops on SIGTERM or Ctrl-C after the
//! requests in flight. Run it alone (`PORT=8080 TARGET=Rust hello`) or as a Knative Service
//! with `image: local:///path/to/hello` under `knative local`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

fn main() -> std::process::ExitCode {
    let port = match std::env::var("PORT") {
        Ok(port) => match port.parse::<u16>() {
            Ok(port) => port,
            Err(e) => {
                eprintln!("hello: PORT={port:?} is not a port number: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        Err(_) => 8080,
    };
    let target = std::env::var("TARGET").unwrap_or_else(|_| "World".to_owned());
    let greeting = Bytes::from(format!("Hello {target}!\n"));
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(serve(SocketAddr::from(([0, 0, 0, 0], port)), greeting)));
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr, greeting: Bytes) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("hello: listening on {}", listener.local_addr()?);
    let graceful = GracefulShutdown::new();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        eprintln!("hello: accept failed: {e}");
                        continue;
                    }
                };
                let greeting = greeting.clone();
                let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                    let greeting = greeting.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(greeting))) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
