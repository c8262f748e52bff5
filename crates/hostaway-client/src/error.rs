//! The specification's error classification, as a typed error.
//!
//! | class | HTTP | retried |
//! |---|---|---|
//! | `rate_limit` | 429 | yes, after `Retry-After`, `X-RateLimit-Retry-After` or a whole window |
//! | `server_error` | 408, 425, 500, 502, 503, 504, 507, 520-524 (a proxy's or CDN's transient failures); other 5xx: not retried | yes |
//! | `network_error` | timeouts, resets, refused connections | yes |
//! | `auth_error` | 401 (the token is dropped: the next call mints one with the current key), a 403 about the token that survives one refresh | no |
//! | `validation_error` | 400, 422, `status: "fail"` on a 2xx | no |
//! | `not_found` | 404 | no |
//! | `conflict` | 409 | no |
//! | `business_rule_error` | a 403 not about the token (a locked reservation) | no |
//! | `mapping_error` | a response the connector cannot read | no |
//! | `circuit_open` | the account's circuit is open (in any replica): nothing was sent | no |
//! | `throttled` | the account's budget is spent for longer than `max_account_wait`, or the shared budget cannot be read: nothing was sent | no (the caller defers) |

use std::fmt;
use std::time::Duration;

use domain::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    RateLimit,
    Server,
    Network,
    Auth,
    Validation,
    NotFound,
    Conflict,
    Mapping,
    BusinessRule,
    CircuitOpen,
    /// Nothing was sent: the account's request budget is spent for longer
    /// than the caller should wait, or the shared budget cannot be read.
    /// Try again after `retry_after`; not a failure of the request.
    Throttled,
}

impl ErrorKind {
    /// The specification's name of the class.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::RateLimit => "rate_limit",
            ErrorKind::Server => "server_error",
            ErrorKind::Network => "network_error",
            ErrorKind::Auth => "auth_error",
            ErrorKind::Validation => "validation_error",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Mapping => "mapping_error",
            ErrorKind::BusinessRule => "business_rule_error",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Throttled => "throttled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an error happened. No secret is ever part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorContext {
    pub account: AccountId,
    pub method: &'static str,
    /// The endpoint template (`/listings/{id}/calendar`), not the concrete path.
    pub endpoint: &'static str,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("Hostaway {kind} on {} {} for account {}{}: {message}", context.method, context.endpoint, context.account, status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct HostawayError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub retryable: bool,
    /// Hostaway's own error text (cleaned and cut) or a description of ours.
    pub message: String,
    pub context: ErrorContext,
    /// For 429: how long Hostaway asked to wait.
    pub retry_after: Option<Duration>,
}

impl HostawayError {
    pub fn new(kind: ErrorKind, context: ErrorContext, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            retryable: matches!(
                kind,
                ErrorKind::RateLimit | ErrorKind::Server | ErrorKind::Network
            ),
            message: message.into(),
            context,
            retry_after: None,
        }
    }

    /// Whether the failure says Hostaway (or the path to it) is unwell, which
    /// is what opens a circuit. A 4xx says something about the request.
    pub fn counts_against_circuit(&self) -> bool {
        matches!(self.kind, ErrorKind::Server | ErrorKind::Network)
    }
}

/// What a response status and body say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A 403 about the token: refresh it once and try again.
    TokenRejected,
    Failed {
        kind: ErrorKind,
        retryable: bool,
    },
}

/// Phrases by which a 403 is about the token rather than the resource
/// (Hostaway answers 403 for both: an expired token and a locked reservation).
const TOKEN_PHRASES: &[&str] = &[
    "token",
    "unauthorized",
    "unauthenticated",
    "not authorized",
    "expired",
    "access denied",
];

/// Statuses that say "try again": a timeout, "too early", storage that may
/// free up, the usual 5xx, and the proxy/CDN errors (Cloudflare's 520-524)
/// in front of Hostaway.
pub(crate) fn is_transient(status: u16) -> bool {
    matches!(
        status,
        408 | 425 | 429 | 500 | 502 | 503 | 504 | 507 | 520..=524
    )
}

pub(crate) fn classify(status: u16, error_text: Option<&str>) -> Verdict {
    let failed = |kind: ErrorKind, retryable: bool| Verdict::Failed { kind, retryable };
    match status {
        401 => failed(ErrorKind::Auth, false),
        403 => {
            let about_token = match error_text {
                // An empty 403 is what a request without a valid token gets.
                None => true,
                Some(text) => {
                    let text = text.to_ascii_lowercase();
                    TOKEN_PHRASES.iter().any(|phrase| text.contains(phrase))
                }
            };
            if about_token {
                Verdict::TokenRejected
            } else {
                failed(ErrorKind::BusinessRule, false)
            }
        }
        400 | 422 => failed(ErrorKind::Validation, false),
        404 => failed(ErrorKind::NotFound, false),
        409 => failed(ErrorKind::Conflict, false),
        429 => failed(ErrorKind::RateLimit, true),
        status => failed(ErrorKind::Server, is_transient(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_about_the_token_is_told_from_a_locked_reservation() {
        assert_eq!(
            classify(403, Some("invalid_token: token has expired")),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(403, Some("Access denied: the token is no longer valid")),
            Verdict::TokenRejected
        );
        assert_eq!(classify(403, None), Verdict::TokenRejected);
        assert_eq!(
            classify(403, Some("Cannot modify reservation")),
            Verdict::Failed {
                kind: ErrorKind::BusinessRule,
                retryable: false
            }
        );
    }

    #[test]
    fn the_specification_table() {
        let cases = [
            (429, ErrorKind::RateLimit, true),
            (500, ErrorKind::Server, true),
            (502, ErrorKind::Server, true),
            (503, ErrorKind::Server, true),
            (504, ErrorKind::Server, true),
            (408, ErrorKind::Server, true),
            (425, ErrorKind::Server, true),
            (507, ErrorKind::Server, true),
            (520, ErrorKind::Server, true),
            (522, ErrorKind::Server, true),
            (524, ErrorKind::Server, true),
            (525, ErrorKind::Server, false),
            (501, ErrorKind::Server, false),
            (401, ErrorKind::Auth, false),
            (400, ErrorKind::Validation, false),
            (404, ErrorKind::NotFound, false),
            (409, ErrorKind::Conflict, false),
            (418, ErrorKind::Server, false),
        ];
        for (status, kind, retryable) in cases {
            assert_eq!(
                classify(status, Some("x")),
                Verdict::Failed { kind, retryable },
                "{status}"
            );
        }
    }
}
