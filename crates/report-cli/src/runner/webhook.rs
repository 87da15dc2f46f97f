//! `reports worker --webhook-listen ADDR --webhook-url-base URL`: the endpoint vendors call
//! when a report is done, and the URLs jobs give them (report-runner's `serve_webhooks`).

use report_runner::Store;

use crate::failure::Failure;

/// Checks `--webhook-url-base`: `https://`, or `http://` to this machine's loopback (where
/// nothing crosses a network); no query or fragment (the token goes at the end of the path).
pub fn url_base(text: &str) -> Result<url::Url, Failure> {
    let bad = |why: &str| Failure::Usage(format!("--webhook-url-base: {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(&format!("not a URL: {e}")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(bad(
                "must be https:// (or http:// to 127.0.0.1, [::1] or localhost)",
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment: each job's token ends the path"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("no user or password in it"));
    }
    Ok(url)
}

/// Binds the endpoint (a taken address is exit 2) and serves it while the worker runs.
pub async fn listen(addr: std::net::SocketAddr, store: Store) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Usage(format!("--webhook-listen {addr}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = report_runner::serve_webhooks(listener, store).await {
            tracing::error!(error = %e, "the webhook endpoint stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_base_is_https_or_loopback_http() {
        for good in [
            "https://hooks.example.com/reports",
            "http://127.0.0.1:8787/hooks",
            "http://localhost:1",
        ] {
            assert!(url_base(good).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.example.com/reports",
            "ftp://127.0.0.1/x",
            "https://h.example.com/x?a=1",
            "https://u:p@h.example.com/x",
            "not a url",
        ] {
            assert!(matches!(url_base(bad), Err(Failure::Usage(_))), "{bad}");
        }
    }
}
