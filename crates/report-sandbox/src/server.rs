//! The HTTP/1.1 server loop: hyper connections serving an axum router, with a per-connection
//! kill switch so a handler can close its connection without answering (a fault).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use http::request::Parts;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Binds a listener on a loopback port (0: an ephemeral one).
pub(crate) async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// The control of the connection a request arrived on, put in every request's extensions.
#[derive(Clone, Default)]
pub(crate) struct ConnCtl {
    kill: Arc<Notify>,
}

impl ConnCtl {
    /// Closes the connection without an answer. Never returns: the handler's future is dropped
    /// together with the connection.
    pub(crate) async fn drop_connection(&self) -> Response {
        self.kill.notify_one();
        std::future::pending::<Response>().await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ConnCtl {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Always present when served by `spawn`; a detached default is harmless otherwise.
        Ok(parts
            .extensions
            .get::<ConnCtl>()
            .cloned()
            .unwrap_or_default())
    }
}

#[derive(Clone)]
struct ConnService {
    router: Router,
    ctl: ConnCtl,
}

impl hyper::service::Service<http::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.ctl.clone());
        let mut router = self.router.clone();
        tower_service::Service::<Request<Incoming>>::call(&mut router, request)
    }
}

/// Serves `router` on `listener` until the returned task is aborted (which also aborts every
/// connection task).
pub(crate) fn spawn(listener: TcpListener, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let (stream, _peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let _ = stream.set_nodelay(true);
            let ctl = ConnCtl::default();
            let service = ConnService {
                router: router.clone(),
                ctl: ctl.clone(),
            };
            connections.spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    result = connection => {
                        if let Err(error) = result {
                            tracing::debug!(%error, "sandbox connection ended with an error");
                        }
                    }
                    () = ctl.kill.notified() => {
                        tracing::debug!("sandbox connection dropped (fault)");
                    }
                }
            });
        }
    })
}
