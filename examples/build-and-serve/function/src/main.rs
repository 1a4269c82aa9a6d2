//! `greeter`: the function the build-and-serve example builds from git and serves with Knative.
//!
//! Serves HTTP/1.1 on `0.0.0.0:$PORT` (default 8080) with the standard library alone, and
//! answers every request with `Hello <TARGET>!` (`$TARGET`, default `World`), followed by the
//! commit it was built from when the build passed one in (`SOURCE_COMMIT` at compile time).
//!
//! HTTP, minimally but correctly enough for curl and Knative's queue-proxy (which keeps its
//! connections open): one thread per connection, the request head read whole before answering,
//! a body (`Content-Length` or chunked) read and discarded so the next request on the connection
//! starts where it should, `Expect: 100-continue` honoured, keep-alive unless the client says
//! `Connection: close` (or speaks HTTP/1.0 without `keep-alive`), `HEAD` answered without a
//! body. A malformed request gets a 400 and the connection is closed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// The commit the build compiled in, if any.
const COMMIT: Option<&str> = option_env!("SOURCE_COMMIT");
/// The longest request head accepted (request line and headers).
const MAX_HEAD: u64 = 16 * 1024;
/// How long an idle keep-alive connection is kept.
const IDLE: Duration = Duration::from_secs(120);

fn main() -> std::process::ExitCode {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    let greeting = greeting(
        &std::env::var("TARGET").unwrap_or_else(|_| "World".to_owned()),
        COMMIT,
    );
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("greeter: cannot listen on port {port:?}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("greeter: listening on port {port}");
    let greeting: Arc<str> = greeting.into();
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let greeting = Arc::clone(&greeting);
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &greeting) {
                        eprintln!("greeter: connection ended: {e}");
                    }
                });
            }
            Err(e) => eprintln!("greeter: accept failed: {e}"),
        }
    }
    std::process::ExitCode::SUCCESS
}

/// The answer to every request.
fn greeting(target: &str, commit: Option<&str>) -> String {
    match commit {
        Some(commit) => format!("Hello {target}! (built from {commit})\n"),
        None => format!("Hello {target}!\n"),
    }
}

/// Answers the requests of one connection until the client closes it or asks to.
fn serve(stream: TcpStream, greeting: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let request = match read_head(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                bad_request(&mut writer)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if request.expect_continue && request.body != Body::Empty {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        if let Err(e) = discard_body(&mut reader, request.body) {
            if e.kind() == io::ErrorKind::InvalidData {
                bad_request(&mut writer)?;
            }
            return Err(e);
        }
        respond(
            &mut writer,
            "200 OK",
            greeting,
            request.method == "HEAD",
            request.keep_alive,
        )?;
        if !request.keep_alive {
            return Ok(());
        }
    }
}

/// What the server needs of a request head.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    keep_alive: bool,
    expect_continue: bool,
    body: Body,
}

/// How the request's body is framed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Body {
    Empty,
    Length(u64),
    Chunked,
}

/// Reads one request head; `None` when the connection closed (or idled out) between requests.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut head = reader.take(MAX_HEAD);
    let mut line = String::new();
    // A client may send empty lines before a request (RFC 9112, 2.2).
    loop {
        line.clear();
        match head.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(_) if line.trim().is_empty() => {}
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    let mut words = line.split_whitespace();
    let (Some(method), Some(_target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(invalid("malformed request line"));
    };
    let method = method.to_owned();
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(invalid("unsupported HTTP version")),
    };
    let mut expect_continue = false;
    let mut body = Body::Empty;
    loop {
        line.clear();
        if head.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            return Err(invalid("incomplete request head"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("malformed header"));
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "connection" => {
                for option in value.split(',').map(str::trim) {
                    if option.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if option.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            "content-length" if body != Body::Chunked => {
                let length = value
                    .parse()
                    .map_err(|_| invalid("malformed Content-Length"))?;
                body = Body::Length(length);
            }
            "transfer-encoding" => {
                if !value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                {
                    return Err(invalid("unsupported Transfer-Encoding"));
                }
                body = Body::Chunked;
            }
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    Ok(Some(Request {
        method,
        keep_alive,
        expect_continue,
        body,
    }))
}

/// Reads and drops the request's body, so that the next request starts where it should.
fn discard_body(reader: &mut impl BufRead, body: Body) -> io::Result<()> {
    match body {
        Body::Empty => Ok(()),
        Body::Length(length) => skip(reader, length),
        Body::Chunked => loop {
            let mut line = String::new();
            reader.take(1024).read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "malformed chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.take(MAX_HEAD).read_line(&mut line)? == 0
                        || line.trim_end().is_empty()
                    {
                        return Ok(());
                    }
                }
            }
            skip(reader, size + 2)?;
        },
    }
}

fn skip(reader: &mut impl BufRead, length: u64) -> io::Result<()> {
    let skipped = io::copy(&mut reader.take(length), &mut io::sink())?;
    if skipped < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the body ended early",
        ));
    }
    Ok(())
}

/// Answers a malformed request; the connection is closed after it.
fn bad_request(writer: &mut impl Write) -> io::Result<()> {
    respond(writer, "400 Bad Request", "bad request\n", false, false)
}

fn respond(
    writer: &mut impl Write,
    status: &str,
    body: &str,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    writer.write_all(response.as_bytes())?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Option<Request> {
        read_head(&mut text.as_bytes()).unwrap()
    }

    #[test]
    fn the_greeting_names_the_target_and_the_commit_when_built_with_one() {
        assert_eq!(greeting("Knative", None), "Hello Knative!\n");
        assert_eq!(
            greeting("Knative", Some("abc123")),
            "Hello Knative! (built from abc123)\n"
        );
    }

    #[test]
    fn http_1_1_keeps_the_connection_unless_the_client_closes_it() {
        assert!(
            head("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn a_body_is_framed_by_its_length_or_chunks() {
        let post = "POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
        let request = head(post).unwrap();
        assert_eq!(request.body, Body::Length(5));
        assert!(request.expect_continue);
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .body,
            Body::Chunked
        );
    }

    #[test]
    fn a_discarded_body_leaves_the_next_request_in_place() {
        let mut stream = "5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n".as_bytes();
        discard_body(&mut stream, Body::Chunked).unwrap();
        assert_eq!(
            head(std::str::from_utf8(stream).unwrap()).unwrap().method,
            "GET"
        );
        let mut stream = "helloGET / HTTP/1.1\r\n\r\n".as_bytes();
        discard_body(&mut stream, Body::Length(5)).unwrap();
        assert_eq!(
            head(std::str::from_utf8(stream).unwrap()).unwrap().method,
            "GET"
        );
    }

    #[test]
    fn a_closed_connection_between_requests_is_no_request() {
        assert_eq!(head(""), None);
    }

    #[test]
    fn a_truncated_or_malformed_head_is_invalid() {
        for text in [
            "GET / HTTP/1.1\r\nHost: x\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: many\r\n\r\n",
        ] {
            let error = read_head(&mut text.as_bytes()).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{text:?}");
        }
    }
}
