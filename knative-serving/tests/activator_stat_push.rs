//! The activator's stats reach an autoscaler over HTTP: protobuf `WireStatMessages` POSTed to
//! `/stats`, decoded here with the autoscaler collector's own decoder.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use knative_serving::autoscaler::collector::decode_pushed;
use knative_serving::autoscaler::wire::{PROTOBUF_CONTENT_TYPE, STAT_PUSH_PATH};
use knative_serving::dataplane::activator::stats::HttpStatSink;
use knative_serving::dataplane::activator::{Activator, ActivatorConfig, RevisionKey};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A stand-in autoscaler recording method, path, content type and body of every request.
async fn autoscaler() -> (
    String,
    mpsc::UnboundedReceiver<(Method, String, String, Bytes)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let content_type = parts
                            .headers
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        let _ = tx.send((
                            parts.method,
                            parts.uri.path().to_owned(),
                            content_type,
                            body,
                        ));
                        let mut response = http::Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::NO_CONTENT;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_first_request_at_zero_is_pushed_to_the_autoscaler_as_protobuf() {
    let (url, mut received) = autoscaler().await;
    let sink = HttpStatSink::spawn(&url).unwrap();
    let activator = Activator::new(
        ActivatorConfig {
            pod_name: "activator-abc".into(),
            ..ActivatorConfig::default()
        },
        Arc::new(sink),
    );
    let hello = RevisionKey::new("default", "hello-00001");
    activator.upsert_revision(&hello, 0);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(activator.serve(listener, std::future::pending()));

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::get(format!("http://{addr}/"))
        .header("knative-serving-namespace", "default")
        .header("knative-serving-revision", "hello-00001")
        .body(Empty::new())
        .unwrap();
    let waiting = tokio::spawn(async move { client.request(req).await });

    let (method, path, content_type, body) =
        tokio::time::timeout(Duration::from_millis(900), received.recv())
            .await
            .expect("pushed before the first one-second report")
            .unwrap();
    assert_eq!(method, Method::POST);
    assert_eq!(path, STAT_PUSH_PATH);
    assert_eq!(content_type, PROTOBUF_CONTENT_TYPE);
    let stats = decode_pushed(&body).expect("the autoscaler's decoder accepts the batch");
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].0.to_string(), "default/hello-00001");
    assert_eq!(stats[0].1.average_concurrent_requests, 1.0);
    assert_eq!(stats[0].1.request_count, 1.0);
    waiting.abort();
}

#[test]
fn an_autoscaler_url_that_is_no_uri_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    assert!(HttpStatSink::spawn("http://bad host").is_err());
}
