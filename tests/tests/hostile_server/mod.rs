//! A hostile HTTP/1.1 server on 127.0.0.1, on a raw `TcpListener`: each request is answered by
//! a script of writes, pauses and hangs, so tests can drip bytes, stall after the headers, cut
//! bodies short or never answer. Every connection task ends with the server (bounded tests).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The start of a `Range: bytes=N-` header, if any.
    pub fn range_start(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .split('-')
            .next()?
            .parse()
            .ok()
    }
}

/// One step of an answer.
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Write these bytes one at a time, pausing between them.
    Drip(Vec<u8>, Duration),
    /// Write this many bytes of an endless body, in 64 KiB chunks (0 = forever).
    Endless(u64),
    /// Keep the connection open and send nothing more.
    Hang,
    /// Close the connection.
    Close,
}

/// An answer with a status line, headers and a body, as steps.
pub fn answer(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<Step> {
    vec![
        Step::Write(head(status, headers, Some(body.len()))),
        Step::Write(body.to_vec()),
        Step::Close,
    ]
}

/// A JSON answer.
pub fn json(status: &str, body: &str) -> Vec<Step> {
    answer(
        status,
        &[("Content-Type", "application/json".into())],
        body.as_bytes(),
    )
}

/// A status line and headers (with `Content-Length` when `length` is given).
pub fn head(status: &str, headers: &[(&str, String)], length: Option<usize>) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(n) = length {
        out.push_str(&format!("Content-Length: {n}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

type Handler = dyn Fn(&Request) -> Vec<Step> + Send + Sync;

/// A running hostile server; stops (and drops its connections) when dropped.
pub struct Hostile {
    pub base: String,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    pub async fn start(handler: impl Fn(&Request) -> Vec<Step> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                let handler = handler.clone();
                let seen = seen.clone();
                connections.spawn(serve(socket, handler, seen));
            }
        });
        Hostile {
            base,
            requests,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, handler: Arc<Handler>, seen: Arc<Mutex<Vec<Request>>>) {
    let Some(request) = read_head(&mut socket).await else {
        return;
    };
    seen.lock().unwrap().push(request.clone());
    for step in handler(&request) {
        let ok = match step {
            Step::Write(bytes) => socket.write_all(&bytes).await.is_ok(),
            Step::Drip(bytes, pause) => {
                let mut ok = true;
                for b in bytes {
                    if socket.write_all(&[b]).await.is_err() {
                        ok = false;
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
                ok
            }
            Step::Endless(total) => {
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0u64;
                loop {
                    if total > 0 && sent >= total {
                        break true;
                    }
                    if socket.write_all(&chunk).await.is_err() {
                        break false;
                    }
                    sent += chunk.len() as u64;
                }
            }
            Step::Hang => {
                // Until the client gives up (or the server is dropped).
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                false
            }
            Step::Close => false,
        };
        if !ok {
            break;
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads a request's head (and skips a small body announced by `Content-Length`).
async fn read_head(socket: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(1024 * 1024)];
    socket.read_exact(&mut body).await.ok()?;
    Some(Request {
        method,
        path,
        headers,
    })
}
