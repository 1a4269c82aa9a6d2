//! `hello` as a process: it answers on $PORT with $TARGET, and refuses a bad PORT clearly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port free on every address, as `hello` binds `0.0.0.0` (one free on 127.0.0.1 only may
/// be held on another loopback address, e.g. by a local Pod).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn it_greets_the_target_on_port() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env("PORT", port.to_string())
        .env("TARGET", "Rust")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let response = loop {
        if let Some(r) = get(port) {
            break r;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("hello exited ({status}) before it answered on port {port}: {stderr}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "hello never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("Hello Rust!\n"), "{response}");
}

#[test]
fn a_bad_port_is_refused_with_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_hello"))
        .env("PORT", "eighty")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORT=\"eighty\""), "{stderr}");
}
