//! A cached bearer-style token with single-flight renewal, for vendors whose credentials are
//! exchanged for short-lived tokens (OFD.ru's AuthToken, CloudBlue's JWT).

use std::future::Future;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::{Clock, Result, TokioClock};

/// A token and when it expires (`None`: until the server refuses it).
#[derive(Clone)]
pub struct Token {
    pub value: SecretString,
    pub expires: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"[REDACTED]")
            .field("expires", &self.expires)
            .finish()
    }
}

/// Caches one token; renews it `margin` before expiry, one renewal at a time.
///
/// Each stored token gets a generation number, so a request that failed with an old token
/// invalidates only that token, never a newer one another task already fetched. Expiry is
/// judged on the cache's [`Clock`] (tokio's by default), so tests run it in virtual time.
#[derive(Debug)]
pub struct TokenCache {
    state: RwLock<State>,
    renewal: tokio::sync::Mutex<()>,
    margin: chrono::Duration,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct State {
    current: Option<Token>,
    generation: u64,
}

impl TokenCache {
    /// A cache renewing tokens `margin` before they expire.
    pub fn new(margin: std::time::Duration) -> Self {
        TokenCache {
            state: RwLock::default(),
            renewal: tokio::sync::Mutex::new(()),
            margin: chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero()),
            clock: Arc::new(TokioClock::new()),
        }
    }

    /// The same cache judging expiry on `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The current time on the cache's clock (when a token's lifetime starts).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The cached token and its generation, if it is good for at least `margin` more.
    pub fn usable(&self, now: DateTime<Utc>) -> Option<(SecretString, u64)> {
        let state = self.state.read().expect("token lock");
        let token = state.current.as_ref()?;
        match token.expires {
            Some(expires) if now + self.margin >= expires => None,
            _ => Some((token.value.clone(), state.generation)),
        }
    }

    /// The cached token, whatever its expiry (for request hooks).
    pub fn current(&self) -> Option<SecretString> {
        let state = self.state.read().expect("token lock");
        state.current.as_ref().map(|t| t.value.clone())
    }

    /// Returns a usable token's generation, calling `renew` when there is none. Concurrent
    /// callers wait for one renewal instead of each starting their own.
    pub async fn get_or_renew<F, Fut>(&self, renew: F) -> Result<u64>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token>>,
    {
        if let Some((_, generation)) = self.usable(self.clock.now()) {
            return Ok(generation);
        }
        let _renewing = self.renewal.lock().await;
        if let Some((_, generation)) = self.usable(self.clock.now()) {
            return Ok(generation);
        }
        let token = renew().await?;
        let mut state = self.state.write().expect("token lock");
        state.current = Some(token);
        state.generation += 1;
        Ok(state.generation)
    }

    /// Runs `attempt` with a usable token (renewing with `renew` when needed). When `refused`
    /// says the answer is a refusal of the token, forgets it, renews once and runs `attempt`
    /// again. Returns the last attempt's own result; only a failed renewal is an [`Error`].
    pub async fn with_renewal<T, E, R, RFut, A, AFut>(
        &self,
        renew: R,
        attempt: A,
        refused: impl Fn(&E) -> bool,
    ) -> Result<std::result::Result<T, E>>
    where
        R: Fn() -> RFut,
        RFut: Future<Output = Result<Token>>,
        A: Fn() -> AFut,
        AFut: Future<Output = std::result::Result<T, E>>,
    {
        let generation = self.get_or_renew(&renew).await?;
        match attempt().await {
            Err(e) if refused(&e) => {
                tracing::debug!("token refused; renewing once");
                self.invalidate(generation);
                self.get_or_renew(&renew).await?;
                Ok(attempt().await)
            }
            other => Ok(other),
        }
    }

    /// Forgets the token of `generation` (after the server refused it).
    pub fn invalidate(&self, generation: u64) {
        let mut state = self.state.write().expect("token lock");
        if state.generation == generation {
            state.current = None;
        }
    }
}
