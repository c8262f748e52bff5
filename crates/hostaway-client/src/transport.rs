//! The request pipeline every operation goes through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

use domain::AccountId;
use mapping::api::{ApiStatus, Envelope};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;

use crate::breaker::{CircuitBreaker, Transition};
use crate::budget::{Admission, Budget, LocalBudget};
use crate::config::ClientConfig;
use crate::credentials::CredentialSource;
use crate::error::{ErrorContext, ErrorKind, HostawayError, Verdict, classify};
use crate::metrics::ClientMetrics;
use crate::token::{CachedToken, SharedToken, TokenStore};

/// What one operation asks of the API.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub method: Method,
    /// The endpoint template, for metrics and errors: `/listings/{id}`.
    pub endpoint: &'static str,
    /// The concrete path below the base URL: `/listings/218666`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn new(method: Method, endpoint: &'static str, path: String) -> Self {
        Self {
            method,
            endpoint,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

#[derive(Debug)]
struct AccountState {
    token: tokio::sync::Mutex<Option<CachedToken>>,
    breaker: CircuitBreaker,
    /// The account's own settings as last read, and when.
    settings: Mutex<Option<(Instant, Option<AccountSettings>)>>,
}

/// What an account's own configuration changes in how it is called; `None`
/// fields keep the client's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSettings {
    /// Per request.
    pub timeout: Option<Duration>,
    /// Attempts in all, the first included.
    pub max_attempts: Option<u32>,
    /// Enabled, failure threshold and reset timeout; the rest stays the client's.
    pub breaker: Option<BreakerSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub reset_timeout: Duration,
}

/// Gives an account's own settings (its configuration in the database).
pub trait AccountSettingsSource: Send + Sync + std::fmt::Debug {
    /// `None`: the account has none; the client's apply.
    fn settings<'a>(
        &'a self,
        account: &'a AccountId,
    ) -> futures::future::BoxFuture<'a, Option<AccountSettings>>;
}

/// How long an account's settings are used before they are read again: a
/// change reaches every replica within this.
const SETTINGS_TTL: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    credentials: Arc<dyn CredentialSource>,
    budget: Arc<dyn Budget>,
    tokens: Option<Arc<dyn TokenStore>>,
    settings: Option<Arc<dyn AccountSettingsSource>>,
    accounts: Mutex<HashMap<AccountId, Arc<AccountState>>>,
    metrics: ClientMetrics,
}

/// The Hostaway API, for every account, from one egress IP.
#[derive(Debug, Clone)]
pub struct HostawayClient {
    inner: Arc<Inner>,
}

/// What a send produced, before classification.
enum Sent {
    Response {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    NetworkError(String),
}

/// What several replicas share: the request budget, the account's circuit
/// and its token. One process alone keeps them in memory.
#[derive(Debug, Clone)]
pub struct Shared {
    pub budget: Arc<dyn Budget>,
    pub tokens: Option<Arc<dyn TokenStore>>,
    /// Each account's own timeout, attempts and circuit settings.
    pub settings: Option<Arc<dyn AccountSettingsSource>>,
}

impl HostawayClient {
    /// A client that keeps its budget and tokens in this process. Needs a TLS
    /// provider installed in the process (`rustls`'s ring) for https.
    pub fn new(
        config: ClientConfig,
        credentials: Arc<dyn CredentialSource>,
        metrics: ClientMetrics,
    ) -> Result<Self, reqwest::Error> {
        let shared = Shared {
            budget: Arc::new(LocalBudget::new(&config.account_limit, &config.ip_limit)),
            tokens: None,
            settings: None,
        };
        Self::with_shared(config, credentials, metrics, shared)
    }

    /// A client whose budget, circuits and tokens are shared with other
    /// replicas through `shared`.
    pub fn with_shared(
        config: ClientConfig,
        credentials: Arc<dyn CredentialSource>,
        metrics: ClientMetrics,
        shared: Shared,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!(
                "tvl-hostaway-connector/",
                env!("CARGO_PKG_VERSION")
            ))
            .pool_max_idle_per_host(32);
        if let Some(timeout) = config.timeout {
            builder = builder
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)));
        }
        if let Some(address) = config.local_address {
            builder = builder.local_address(address);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http: builder.build()?,
                budget: shared.budget,
                tokens: shared.tokens,
                settings: shared.settings,
                config,
                credentials,
                accounts: Mutex::new(HashMap::new()),
                metrics,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn account(&self, account: &AccountId) -> Arc<AccountState> {
        let mut accounts = self
            .inner
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(accounts.entry(account.clone()).or_insert_with(|| {
            self.inner.metrics.account_added();
            Arc::new(AccountState {
                token: tokio::sync::Mutex::new(None),
                breaker: CircuitBreaker::new(self.inner.config.breaker.clone()),
                settings: Mutex::new(None),
            })
        }))
    }

    /// Drops the account's cached token unless it was minted with
    /// `current_key` (the key stored now; `None`: the account has none any
    /// more). Told by PostgreSQL whenever an account's stored key changes, so
    /// a rotation reaches every running dispatcher, while a master-key rewrap
    /// (same key, new ciphertext) keeps the token. Returns whether it dropped one.
    pub async fn forget_token_unless_minted_with(
        &self,
        account: &AccountId,
        current_key: Option<&SecretString>,
    ) -> bool {
        let state = self.account(account);
        let mut slot = state.token.lock().await;
        let stale = slot
            .as_ref()
            .is_some_and(|token| current_key.is_none_or(|key| !token.was_minted_with(key)));
        if stale {
            *slot = None;
            self.inner
                .metrics
                .token_drops
                .with_label_values(&["key_changed"])
                .inc();
        }
        stale
    }

    /// The accounts this client has seen (whose tokens it may hold).
    pub fn known_accounts(&self) -> Vec<AccountId> {
        self.inner
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Drops the cached token if it is `used` (a concurrent call may have
    /// replaced it already).
    async fn drop_token(&self, state: &AccountState, used: &SecretString, reason: &str) {
        let mut slot = state.token.lock().await;
        if slot.as_ref().is_some_and(|token| token.same_as(used)) {
            *slot = None;
            self.inner
                .metrics
                .token_drops
                .with_label_values(&[reason])
                .inc();
        }
    }

    /// The account's circuit state (for callers that park work while it is open).
    pub fn circuit_state(&self, account: &AccountId) -> crate::breaker::CircuitState {
        self.account(account).breaker.state()
    }

    async fn note(&self, account: &AccountId, transition: Option<Transition>) {
        if let Some(transition) = transition {
            self.inner.metrics.transition(transition);
            match transition.to {
                crate::breaker::CircuitState::Open => {
                    tracing::warn!(
                        account_id = %account, from = transition.from.as_str(),
                        "circuit breaker opened: the account's requests fail fast until it half-opens"
                    );
                    self.inner
                        .budget
                        .circuit_opened(account, self.account(account).breaker.reset_timeout())
                        .await;
                }
                crate::breaker::CircuitState::Closed => {
                    tracing::info!(account_id = %account, "circuit breaker closed");
                    self.inner.budget.circuit_closed(account).await;
                }
                other => {
                    tracing::info!(account_id = %account, state = other.as_str(), "circuit breaker {}", other.as_str())
                }
            }
        }
    }

    fn record_error(&self, error: &HostawayError) {
        self.inner
            .metrics
            .errors
            .with_label_values(&[
                error.kind.as_str(),
                if error.retryable { "true" } else { "false" },
            ])
            .inc();
        if error.retryable {
            tracing::warn!(kind = error.kind.as_str(), status = error.status, error = %error, "Hostaway API error");
        } else {
            tracing::error!(kind = error.kind.as_str(), status = error.status, error = %error, "Hostaway API error");
        }
    }

    /// The account's own settings (read again every `SETTINGS_TTL`), with
    /// its circuit brought in line with them.
    async fn settings(&self, account: &AccountId, state: &AccountState) -> Option<AccountSettings> {
        let source = self.inner.settings.as_ref()?;
        let cached = state
            .settings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .filter(|(read_at, _)| read_at.elapsed() < SETTINGS_TTL);
        let settings = match cached {
            Some((_, settings)) => settings,
            None => {
                let settings = source.settings(account).await;
                *state
                    .settings
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some((Instant::now(), settings.clone()));
                settings
            }
        };
        let mut breaker = self.inner.config.breaker.clone();
        if let Some(own) = settings.as_ref().and_then(|s| s.breaker) {
            breaker.enabled = own.enabled;
            breaker.failure_threshold = own.failure_threshold.max(1);
            breaker.reset_timeout = own.reset_timeout;
        }
        state.breaker.reconfigure(&breaker);
        settings
    }

    /// Sends `request` for `account` through breaker, token, limits and
    /// retries; returns the success envelope.
    pub(crate) async fn call(
        &self,
        account: &AccountId,
        request: ApiRequest,
    ) -> Result<Envelope, HostawayError> {
        let state = self.account(account);
        let context = ErrorContext {
            account: account.clone(),
            method: method_name(&request.method),
            endpoint: request.endpoint,
        };
        let settings = self.settings(account, &state).await;
        let mut policy = self.inner.config.retry.clone();
        if let Some(attempts) = settings.as_ref().and_then(|s| s.max_attempts) {
            policy.max_attempts = attempts.max(1);
        }
        let timeout = settings.as_ref().and_then(|s| s.timeout);
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let (admitted, transition) = state.breaker.admit();
            self.note(account, transition).await;
            if let Err(remaining) = admitted {
                self.inner.metrics.short_circuited.inc();
                let mut error = HostawayError::new(
                    ErrorKind::CircuitOpen,
                    context.clone(),
                    format!("circuit open; next trial in {} s", remaining.as_secs()),
                );
                error.retry_after = Some(remaining);
                return Err(error);
            }
            let mut used = None;
            let outcome = match self.token(account, &state, &context).await {
                Ok(token) => {
                    let sent = self
                        .send_once(account, &request, &context, &token, timeout)
                        .await;
                    used = Some(token);
                    sent
                }
                Err(error) => Err(Failure::Error(error)),
            };
            let error = match outcome {
                Ok(envelope) => {
                    let transition = state.breaker.record_success();
                    self.note(account, transition).await;
                    return Ok(envelope);
                }
                Err(Failure::TokenRejected(used)) if !refreshed => {
                    // Refresh once: drop the token this request used (unless a
                    // concurrent request replaced it already) and go again.
                    refreshed = true;
                    attempt -= 1;
                    self.drop_token(&state, &used, "token_rejected").await;
                    if let Some(store) = &self.inner.tokens
                        && let Err(error) = store.forget(account, &used).await
                    {
                        tracing::warn!(account_id = %account, %error, "the refused token stays in the shared store");
                    }
                    tracing::info!(account_id = %account, "access token rejected; fetching a new one");
                    continue;
                }
                Err(Failure::TokenRejected(_)) => HostawayError::new(
                    ErrorKind::Auth,
                    context.clone(),
                    "access denied even with a fresh token",
                ),
                Err(Failure::Error(error)) => {
                    if error.status == Some(401)
                        && let Some(used) = &used
                    {
                        // The key behind the token may have been rotated or
                        // revoked: the next call mints a token with the key
                        // stored now.
                        self.drop_token(&state, used, "unauthorized").await;
                        if let Some(store) = &self.inner.tokens {
                            let _ = store.forget(account, used).await;
                        }
                        tracing::warn!(account_id = %account, "401 from Hostaway; the account's token is dropped");
                    }
                    error
                }
            };
            if error.counts_against_circuit() {
                let transition = state.breaker.record_failure();
                self.note(account, transition).await;
            }
            self.record_error(&error);
            if !error.retryable || attempt >= policy.max_attempts {
                return Err(error);
            }
            let delay = error.retry_after.unwrap_or_else(|| policy.delay(attempt));
            tokio::time::sleep(delay).await;
        }
    }

    /// One send: limits, request, classification.
    async fn send_once(
        &self,
        account: &AccountId,
        request: &ApiRequest,
        context: &ErrorContext,
        token: &SecretString,
        timeout: Option<Duration>,
    ) -> Result<Envelope, Failure> {
        let url = format!("{}{}", self.inner.config.base_url, request.path);
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .bearer_auth(token.expose_secret())
            .header("Cache-control", "no-cache")
            .query(&request.query);
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        let builder = match &request.body {
            Some(body) => builder.json(body),
            None => builder,
        };
        let sent = self
            .send(account, context.method, request.endpoint, context, builder)
            .await
            .map_err(Failure::Error)?;
        match sent {
            Sent::NetworkError(message) => Err(Failure::Error(HostawayError::new(
                ErrorKind::Network,
                context.clone(),
                message,
            ))),
            Sent::Response {
                status,
                headers,
                body,
            } => {
                let text = mapping::api::error_text(&body);
                if status.is_success() {
                    return match mapping::api::parse_envelope(&body) {
                        Ok(envelope) if envelope.status == Some(ApiStatus::Fail) => {
                            let mut error = HostawayError::new(
                                ErrorKind::Validation,
                                context.clone(),
                                text.unwrap_or_else(|| "status \"fail\"".into()),
                            );
                            error.status = Some(status.as_u16());
                            Err(Failure::Error(error))
                        }
                        Ok(envelope) => Ok(envelope),
                        Err(parse) => Err(Failure::Error(HostawayError::new(
                            ErrorKind::Mapping,
                            context.clone(),
                            parse.to_string(),
                        ))),
                    };
                }
                match classify(status.as_u16(), text.as_deref()) {
                    Verdict::TokenRejected => Err(Failure::TokenRejected(token.clone())),
                    Verdict::Failed { kind, retryable } => {
                        let mut error = HostawayError::new(
                            kind,
                            context.clone(),
                            text.unwrap_or_else(|| {
                                status.canonical_reason().unwrap_or("error").to_owned()
                            }),
                        );
                        error.retryable = retryable;
                        error.status = Some(status.as_u16());
                        if kind == ErrorKind::RateLimit {
                            error.retry_after = Some(retry_after(
                                &headers,
                                self.inner.config.account_limit.window,
                            ));
                        }
                        Err(Failure::Error(error))
                    }
                }
            }
        }
    }

    /// Takes permission from the budget, sends, and records the metrics. A
    /// request the budget holds back longer than `max_account_wait` for its
    /// account is not sent: `Throttled`, so that the caller can serve another
    /// account meanwhile; an open circuit (opened by any replica) stops it too.
    async fn send(
        &self,
        account: &AccountId,
        method: &'static str,
        endpoint: &'static str,
        context: &ErrorContext,
        request: reqwest::RequestBuilder,
    ) -> Result<Sent, HostawayError> {
        let metrics = &self.inner.metrics;
        loop {
            match self.inner.budget.take(account).await {
                Ok(Admission::Granted {
                    account_left,
                    egress_left,
                }) => {
                    for (scope, left) in [("account", account_left), ("ip", egress_left)] {
                        if let Some(left) = left {
                            metrics
                                .available_tokens
                                .with_label_values(&[scope])
                                .set(i64::from(left));
                        }
                    }
                    break;
                }
                Ok(Admission::Wait {
                    account: for_account,
                    egress,
                }) => {
                    if for_account > self.inner.config.max_account_wait {
                        metrics.throttled.inc();
                        let mut error = HostawayError::new(
                            ErrorKind::Throttled,
                            context.clone(),
                            format!(
                                "the account's request budget is spent for {} ms; nothing was sent",
                                for_account.as_millis()
                            ),
                        );
                        error.retry_after = Some(for_account);
                        return Err(error);
                    }
                    tokio::time::sleep(for_account.max(egress).max(Duration::from_millis(1))).await;
                }
                Ok(Admission::CircuitOpen(remaining)) => {
                    metrics.short_circuited.inc();
                    let mut error = HostawayError::new(
                        ErrorKind::CircuitOpen,
                        context.clone(),
                        format!(
                            "circuit open (shared); next trial in {} s",
                            remaining.as_secs()
                        ),
                    );
                    error.retry_after = Some(remaining);
                    return Err(error);
                }
                Err(reason) => {
                    let mut error = HostawayError::new(
                        ErrorKind::Throttled,
                        context.clone(),
                        format!("the request budget cannot be read ({reason}); nothing was sent"),
                    );
                    error.retry_after = Some(Duration::from_secs(1));
                    return Err(error);
                }
            }
        }
        let span = tracing::info_span!(
            "hostaway.api.request",
            otel.kind = "client",
            "http.request.method" = method,
            "hostaway.endpoint" = endpoint,
            "hostaway.account_id" = %account,
            "http.response.status_code" = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = async {
            let mut request = request.build()?;
            telemetry::propagation::inject_http(request.headers_mut());
            let response = self.inner.http.execute(request).await?;
            let current = tracing::Span::current();
            current.record("http.response.status_code", response.status().as_u16());
            if !response.status().is_success() {
                current.record("otel.status_code", "ERROR");
            }
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Sent::Response {
                status,
                headers,
                body,
            })
        }
        .instrument(span)
        .await;
        metrics
            .request_duration
            .with_label_values(&[method, endpoint])
            .observe(started.elapsed().as_secs_f64());
        let sent = result.unwrap_or_else(|error| {
            // Without the URL: the error text stays free of paths and queries.
            Sent::NetworkError(error.without_url().to_string())
        });
        let status_label = match &sent {
            Sent::Response { status, .. } => status.as_str().to_owned(),
            Sent::NetworkError(_) => "network".to_owned(),
        };
        metrics
            .requests
            .with_label_values(&[method, endpoint, &status_label])
            .inc();
        tracing::debug!(method, endpoint, status = %status_label, elapsed_ms = started.elapsed().as_millis() as u64, "Hostaway API request");
        Ok(sent)
    }

    /// A token usable now: the cached one, or a new one (one fetch at a time
    /// per account; concurrent requests wait for it).
    async fn token(
        &self,
        account: &AccountId,
        state: &AccountState,
        context: &ErrorContext,
    ) -> Result<SecretString, HostawayError> {
        let mut slot = state.token.lock().await;
        let now = Instant::now();
        let token = match slot.as_ref() {
            Some(token) if token.is_fresh(now) => token.clone(),
            _ => {
                let token = match &self.inner.tokens {
                    Some(store) => self.shared_token(store.as_ref(), account, context).await?,
                    None => self.fetch_token(account, context).await?,
                };
                *slot = Some(token.clone());
                token
            }
        };
        drop(slot);
        tokio::time::sleep_until(token.usable_from).await;
        Ok(token.secret)
    }

    /// The account's token from the store the replicas share; minted by one
    /// replica at a time (the others wait on the store's lock, then read it).
    async fn shared_token(
        &self,
        store: &dyn TokenStore,
        account: &AccountId,
        context: &ErrorContext,
    ) -> Result<CachedToken, HostawayError> {
        let unavailable = |why: String| {
            let mut error = HostawayError::new(
                ErrorKind::Throttled,
                context.clone(),
                format!("the shared token store cannot be used ({why}); nothing was sent"),
            );
            error.retry_after = Some(Duration::from_secs(1));
            error
        };
        // A stored token is used only while the account's key is the one it
        // was minted with: a rotated key makes it stale for every replica.
        let key = self.inner.credentials.client_secret(account).await;
        let usable = |stored: &SharedToken| {
            stored.is_fresh() && key.as_ref().is_some_and(|key| stored.was_minted_with(key))
        };
        if let Some(stored) = store.load(account).await.map_err(unavailable)?
            && usable(&stored)
        {
            return Ok(stored.to_cached());
        }
        let mut lock = store.lock(account).await.map_err(unavailable)?;
        if let Some(stored) = lock.load().await.map_err(unavailable)?
            && usable(&stored)
        {
            // Another replica minted it while this one waited.
            return Ok(stored.to_cached());
        }
        let minted = self.fetch_token(account, context).await?;
        if let Err(error) = lock.save(minted.to_shared()).await {
            tracing::warn!(account_id = %account, %error, "a new token could not be shared; other replicas mint their own");
        }
        Ok(minted)
    }

    async fn fetch_token(
        &self,
        account: &AccountId,
        context: &ErrorContext,
    ) -> Result<CachedToken, HostawayError> {
        let context = ErrorContext {
            endpoint: "/accessTokens",
            method: "POST",
            ..context.clone()
        };
        let Some(secret) = self.inner.credentials.client_secret(account).await else {
            return Err(HostawayError::new(
                ErrorKind::Auth,
                context,
                "no API client secret configured for this account",
            ));
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", account.as_str()),
            ("client_secret", secret.expose_secret()),
            ("scope", "general"),
        ];
        let request = self
            .inner
            .http
            .post(format!("{}/accessTokens", self.inner.config.base_url))
            .header("Cache-control", "no-cache")
            .form(&form);
        self.inner.metrics.token_fetches.inc();
        let sent = self
            .send(account, "POST", "/accessTokens", &context, request)
            .await?;
        // Counted from the answer, not the ask: the request may have waited on
        // the limits, and Hostaway starts the activation second when it issues.
        let issued = Instant::now();
        match sent {
            Sent::NetworkError(message) => {
                Err(HostawayError::new(ErrorKind::Network, context, message))
            }
            Sent::Response {
                status,
                headers,
                body,
            } if !status.is_success() => {
                let kind = match status.as_u16() {
                    400 | 401 | 403 => ErrorKind::Auth,
                    429 => ErrorKind::RateLimit,
                    500 | 502 | 503 | 504 => ErrorKind::Server,
                    _ => ErrorKind::Server,
                };
                let mut error = HostawayError::new(
                    kind,
                    context,
                    mapping::api::error_text(&body)
                        .unwrap_or_else(|| "token request refused".into()),
                );
                error.status = Some(status.as_u16());
                error.retryable = crate::error::is_transient(status.as_u16());
                if kind == ErrorKind::RateLimit {
                    error.retry_after = Some(retry_after(
                        &headers,
                        self.inner.config.account_limit.window,
                    ));
                }
                Err(error)
            }
            Sent::Response { body, .. } => {
                let parsed = mapping::api::parse_access_token(&body)
                    .map_err(|e| HostawayError::new(ErrorKind::Mapping, context, e.to_string()))?;
                tracing::info!(account_id = %account, lifetime_secs = parsed.expires_in.map(|d| d.as_secs()), "access token fetched");
                Ok(CachedToken::new(
                    parsed.token,
                    issued,
                    parsed.expires_in,
                    self.inner.config.token_activation_delay,
                )
                .minted_with(&secret))
            }
        }
    }
}

enum Failure {
    /// A 403 about the token this request used.
    TokenRejected(SecretString),
    Error(HostawayError),
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// How long a 429 asks to wait: `Retry-After` (seconds), else
/// `X-RateLimit-Retry-After` (a unix time), else a whole window.
pub(crate) fn retry_after(headers: &HeaderMap, window: Duration) -> Duration {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header(RETRY_AFTER.as_str()).and_then(|v| v.parse::<u64>().ok()) {
        return Duration::from_secs(seconds.min(3600));
    }
    if let Some(at) = header("x-ratelimit-retry-after").and_then(|v| v.parse::<u64>().ok()) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Duration::from_secs(at.saturating_sub(now).min(3600));
    }
    window
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_comes_from_either_header_or_a_window() {
        let window = Duration::from_secs(10);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, window), window);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers, window), Duration::from_secs(3));
        let mut headers = HeaderMap::new();
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 7;
        headers.insert(
            "x-ratelimit-retry-after",
            HeaderValue::from_str(&at.to_string()).unwrap(),
        );
        let wait = retry_after(&headers, window);
        assert!(
            wait >= Duration::from_secs(6) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
    }
}
