//! Calling a client's webhook back, as EvoVoice does with a report's `webhookUrl`: loopback
//! URLs only (the sandbox never calls out), late, lost or repeated as configured.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the sandbox delivers webhook calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// How long after completion the call is made. Default 0.
    pub delay: Duration,
    /// When true, no call is ever made (a lost callback). Default false.
    pub lost: bool,
    /// How many times the same call is made (a repeated callback). Default 1.
    pub copies: u32,
}

impl Default for WebhookDelivery {
    fn default() -> Self {
        WebhookDelivery {
            delay: Duration::ZERO,
            lost: false,
            copies: 1,
        }
    }
}

/// A webhook URL the sandbox may call: `http://` on a loopback host, with an explicit port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoopbackUrl {
    host: String,
    port: u16,
    path: String,
}

impl LoopbackUrl {
    /// `None` unless the URL is plain HTTP to 127.0.0.1, `[::1]` or localhost.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let uri: http::Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host();
        if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
            return None;
        }
        Some(LoopbackUrl {
            host: host.to_owned(),
            port: authority.port_u16()?,
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }

    fn connect_host(&self) -> &str {
        match self.host.as_str() {
            "[::1]" => "::1",
            "localhost" => "127.0.0.1",
            other => other,
        }
    }

    /// POSTs `body` (JSON) once; returns the response's status code. Bounded in time.
    pub(crate) async fn post(&self, body: &str) -> Option<u16> {
        let call = async {
            let mut stream = TcpStream::connect((self.connect_host(), self.port))
                .await
                .ok()?;
            let request = format!(
                "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: sandbox-evovoice-webhook\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.path,
                self.host,
                self.port,
                body.len()
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = vec![0u8; 1024];
            let n = stream.read(&mut head).await.ok()?;
            let line = std::str::from_utf8(&head[..n]).ok()?;
            line.split(' ').nth(1)?.parse().ok()
        };
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_urls_are_called() {
        let ok = LoopbackUrl::parse("http://127.0.0.1:8080/hooks/abc?x=1").unwrap();
        assert_eq!((ok.port, ok.path.as_str()), (8080, "/hooks/abc?x=1"));
        assert!(LoopbackUrl::parse("http://localhost:1/").is_some());
        assert!(LoopbackUrl::parse("http://[::1]:9/").is_some());
        for bad in [
            "https://127.0.0.1:8080/",
            "http://example.com:80/",
            "http://127.0.0.1/",
            "http://user@127.0.0.1:80/",
            "http://10.0.0.1:80/",
            "not a url",
        ] {
            assert_eq!(LoopbackUrl::parse(bad), None, "{bad}");
        }
    }
}
