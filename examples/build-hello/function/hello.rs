//! hello: a tiny HTTP function, built by `knative build run` with nothing but `rustc`.
//!
//! Serves `GET /` with "Hello $TARGET!" on 127.0.0.1:$PORT (default 8080).
//! `hello --check` runs its own checks and exits.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// The function: a request path in, a status and a body out.
fn handle(path: &str) -> (u16, String) {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "World".to_owned());
    match path {
        "/" => (200, format!("Hello {target}!\n")),
        "/healthz" => (200, "ok\n".to_owned()),
        _ => (404, format!("no route for {path}\n")),
    }
}

fn check() {
    assert_eq!(handle("/").0, 200, "GET / answers");
    assert!(handle("/").1.starts_with("Hello "), "GET / greets");
    assert_eq!(handle("/missing").0, 404, "unknown paths are 404");
    println!("check passed");
}

fn main() {
    if std::env::args().any(|a| a == "--check") {
        check();
        return;
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).expect("cannot bind");
    eprintln!("listening on http://{}", listener.local_addr().expect("address"));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(&stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            continue;
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => break,
                Ok(_) if header.trim().is_empty() => break,
                Ok(_) => {}
            }
        }
        let (code, body) = match request_line.split_whitespace().nth(1) {
            Some(path) => handle(path),
            None => (400, "malformed request line\n".to_owned()),
        };
        let reason = match code {
            200 => "OK",
            400 => "Bad Request",
            _ => "Not Found",
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
