//! The gateway's routing table: Ingress host, path and header matching, weighted splits.

use http::HeaderMap;
use knative_serving::apis::Ingress;
use knative_serving::dataplane::gateway::{CompiledIngress, RouteTable};

fn ingress(name: &str, rules: serde_json::Value) -> Ingress {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.internal.knative.dev/v1alpha1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"rules": rules},
    }))
    .unwrap()
}

fn split(service: &str, percent: i32) -> serde_json::Value {
    serde_json::json!({
        "serviceNamespace": "default", "serviceName": service, "servicePort": 80,
        "percent": percent,
    })
}

fn table(ingresses: &[Ingress]) -> RouteTable {
    let compiled: Vec<_> = ingresses
        .iter()
        .map(|i| CompiledIngress::compile(i).unwrap())
        .collect();
    RouteTable::new(&compiled)
}

fn service_for(
    table: &RouteTable,
    host: &str,
    path: &str,
    headers: &HeaderMap,
    roll: f64,
) -> Option<String> {
    table
        .route(host, path, headers, roll)
        .map(|m| m.split.backend.service_name.clone())
}

fn hello() -> Ingress {
    ingress(
        "hello",
        serde_json::json!([{
            "hosts": ["hello.default.example.com", "hello.default.svc.cluster.local"],
            "http": {"paths": [{"splits": [split("hello-00001", 100)]}]},
        }]),
    )
}

#[test]
fn hosts_match_without_case_or_port() {
    let table = table(&[hello()]);
    let none = HeaderMap::new();
    for host in [
        "hello.default.example.com",
        "Hello.Default.Example.COM:8080",
        "hello.default.svc.cluster.local:80",
    ] {
        assert_eq!(
            service_for(&table, host, "/", &none, 0.5).as_deref(),
            Some("hello-00001"),
            "{host}"
        );
    }
    assert_eq!(
        service_for(&table, "other.example.com", "/", &none, 0.5),
        None
    );
}

#[test]
fn the_first_path_whose_prefix_matches_wins() {
    let table = table(&[ingress(
        "paths",
        serde_json::json!([{
            "hosts": ["a.example.com"],
            "http": {"paths": [
                {"path": "/api", "splits": [split("api", 100)]},
                {"splits": [split("catch-all", 100)]},
            ]},
        }]),
    )]);
    let none = HeaderMap::new();
    assert_eq!(
        service_for(&table, "a.example.com", "/api/v1", &none, 0.0).as_deref(),
        Some("api")
    );
    assert_eq!(
        service_for(&table, "a.example.com", "/web", &none, 0.0).as_deref(),
        Some("catch-all")
    );
}

#[test]
fn a_tag_header_route_matches_only_requests_with_that_header() {
    let table = table(&[ingress(
        "tags",
        serde_json::json!([{
            "hosts": ["hello.default.example.com"],
            "http": {"paths": [
                {"headers": {"Knative-Serving-Tag": {"exact": "canary"}}, "splits": [split("hello-00002", 100)]},
                {"splits": [split("hello-00001", 100)]},
            ]},
        }]),
    )]);
    let mut tagged = HeaderMap::new();
    tagged.insert("knative-serving-tag", "canary".parse().unwrap());
    let mut other = HeaderMap::new();
    other.insert("knative-serving-tag", "stable".parse().unwrap());
    let host = "hello.default.example.com";
    assert_eq!(
        service_for(&table, host, "/", &tagged, 0.0).as_deref(),
        Some("hello-00002")
    );
    assert_eq!(
        service_for(&table, host, "/", &other, 0.0).as_deref(),
        Some("hello-00001")
    );
    assert_eq!(
        service_for(&table, host, "/", &HeaderMap::new(), 0.0).as_deref(),
        Some("hello-00001")
    );
}

#[test]
fn splits_own_consecutive_shares_of_the_roll() {
    let table = table(&[ingress(
        "split",
        serde_json::json!([{
            "hosts": ["s.example.com"],
            "http": {"paths": [{"splits": [split("a", 30), split("b", 70)]}]},
        }]),
    )]);
    let none = HeaderMap::new();
    let at = |roll| service_for(&table, "s.example.com", "/", &none, roll).unwrap();
    assert_eq!(at(0.0), "a");
    assert_eq!(at(0.299), "a");
    assert_eq!(at(0.3), "b");
    assert_eq!(at(0.999_999), "b");
}

#[test]
fn a_zero_percent_split_gets_nothing() {
    let table = table(&[ingress(
        "zero",
        serde_json::json!([{
            "hosts": ["z.example.com"],
            "http": {"paths": [{"splits": [split("old", 0), split("new", 100)]}]},
        }]),
    )]);
    let none = HeaderMap::new();
    for roll in [0.0, 0.001, 0.5, 0.999] {
        assert_eq!(
            service_for(&table, "z.example.com", "/", &none, roll).as_deref(),
            Some("new")
        );
    }
}

#[test]
fn a_lone_split_without_percent_takes_everything() {
    let table = table(&[ingress(
        "lone",
        serde_json::json!([{
            "hosts": ["l.example.com"],
            "http": {"paths": [{"splits": [{"serviceNamespace": "default", "serviceName": "only", "servicePort": 80}]}]},
        }]),
    )]);
    assert_eq!(
        service_for(&table, "l.example.com", "/", &HeaderMap::new(), 0.7).as_deref(),
        Some("only")
    );
}

#[test]
fn appended_headers_of_the_path_and_the_split_are_exposed() {
    let table = table(&[ingress(
        "headers",
        serde_json::json!([{
            "hosts": ["h.example.com"],
            "http": {"paths": [{
                "appendHeaders": {"Knative-Serving-Namespace": "default"},
                "splits": [{
                    "serviceNamespace": "default", "serviceName": "hello-00001", "servicePort": 80,
                    "appendHeaders": {"Knative-Serving-Revision": "hello-00001"},
                }],
            }]},
        }]),
    )]);
    let route = table
        .route("h.example.com", "/", &HeaderMap::new(), 0.0)
        .unwrap();
    assert_eq!(route.path.append_headers[0].0, "knative-serving-namespace");
    assert_eq!(route.path.append_headers[0].1, "default");
    assert_eq!(route.split.append_headers[0].0, "knative-serving-revision");
    assert_eq!(route.split.append_headers[0].1, "hello-00001");
}

#[test]
fn where_two_ingresses_claim_a_host_the_first_listed_wins() {
    let first = hello();
    let second = ingress(
        "second",
        serde_json::json!([{
            "hosts": ["hello.default.example.com"],
            "http": {"paths": [{"splits": [split("other", 100)]}]},
        }]),
    );
    let table = table(&[first, second]);
    assert_eq!(
        service_for(
            &table,
            "hello.default.example.com",
            "/",
            &HeaderMap::new(),
            0.0
        )
        .as_deref(),
        Some("hello-00001")
    );
}

#[test]
fn an_invalid_appended_header_is_rejected_with_its_field_path() {
    let bad = ingress(
        "bad",
        serde_json::json!([{
            "hosts": ["b.example.com"],
            "http": {"paths": [{"appendHeaders": {"Bad Header": "x"}, "splits": [split("a", 100)]}]},
        }]),
    );
    let err = CompiledIngress::compile(&bad).unwrap_err();
    assert!(
        err.starts_with("spec.rules[0].http.paths[0].appendHeaders[Bad Header]"),
        "{err}"
    );
}

#[test]
fn a_negative_percent_is_rejected_with_its_field_path() {
    let bad = ingress(
        "bad",
        serde_json::json!([{
            "hosts": ["b.example.com"],
            "http": {"paths": [{"splits": [split("a", -5), split("b", 105)]}]},
        }]),
    );
    let err = CompiledIngress::compile(&bad).unwrap_err();
    assert!(
        err.starts_with("spec.rules[0].http.paths[0].splits[0].percent"),
        "{err}"
    );
}
