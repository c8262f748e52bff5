//! Authentication of a webhook request, in constant time.
//!
//! A sender starts unknown; only [`verify_basic`] (from the headers alone) or
//! [`authenticate`] (HMAC, over the body) turns it into a [`Verified`] one,
//! and only a `Verified` sender's body is read in full, parsed and published.
//! Unknown accounts and wrong credentials are indistinguishable to the caller
//! (the same 401, the same amount of work). A disabled account still
//! authenticates: its webhooks are kept, parked until it is enabled.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use bytes::Bytes;
use domain::AccountId;
use mapping::signature::{self, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER};
use secrecy::ExposeSecret;

use crate::credentials::AccountAuth;

/// How a request proved who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Hmac,
}

/// Why authentication failed. Only logs and metrics see the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials")]
    Missing,
    #[error("wrong credentials or unknown account")]
    Invalid,
    #[error("timestamp older than five minutes")]
    Stale,
    #[error("timestamp more than five minutes in the future")]
    Future,
    #[error("malformed signature or timestamp")]
    Malformed,
}

impl AuthFailure {
    pub fn metric_reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_credentials",
            AuthFailure::Invalid => "invalid_credentials",
            AuthFailure::Stale => "stale_timestamp",
            AuthFailure::Future => "future_timestamp",
            AuthFailure::Malformed => "malformed_signature",
        }
    }
}

/// A request whose sender is not yet known.
#[derive(Debug)]
pub struct Unverified {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A sender who proved to be `account`. Only a `Verified` sender's body is
/// read in full, parsed and published.
#[derive(Debug, Clone)]
pub struct Verified {
    pub account: AccountId,
    pub method: AuthMethod,
    /// The account is disabled in the connector: its webhooks are kept, parked.
    pub enabled: bool,
}

/// A fixed secret that nothing is signed with: unknown accounts are checked
/// against it so they cost the same as known ones.
const DECOY_SECRET: &[u8] = b"decoy-secret-never-valid-9f1c2e7a4b";

/// The credentials a request presents, read from its headers alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Basic {
        login: String,
        password: String,
    },
    /// The specification's signature: checking it needs the body.
    Hmac,
    Missing,
    Malformed,
}

pub fn presented(headers: &HeaderMap) -> Presented {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if headers.contains_key(SIGNATURE_HEADER) {
        return Presented::Hmac;
    }
    match header(AUTHORIZATION.as_str()) {
        None => Presented::Missing,
        Some(value) => match signature::parse_basic(value) {
            Some((login, password)) => Presented::Basic { login, password },
            None => Presented::Malformed,
        },
    }
}

/// Checks Basic credentials against `account` (`None`: unknown, checked
/// against a decoy so it costs the same). Needs no body: a refused sender's
/// body is never read.
pub fn verify_basic(
    login: &str,
    password: &str,
    account: Option<&AccountAuth>,
) -> Result<Verified, AuthFailure> {
    let (expected_login, passwords): (Option<&str>, Vec<&[u8]>) = match account {
        Some(auth) if !auth.passwords.is_empty() => (
            auth.login.as_deref(),
            auth.passwords
                .iter()
                .map(|p| p.expose_secret().as_bytes())
                .collect(),
        ),
        _ => (None, vec![DECOY_SECRET]),
    };
    let login_ok = expected_login
        .is_none_or(|expected| signature::secrets_match(login.as_bytes(), expected.as_bytes()));
    let mut password_ok = false;
    for expected in &passwords {
        password_ok |= signature::secrets_match(password.as_bytes(), expected);
    }
    match account {
        Some(auth) if login_ok && password_ok && !auth.passwords.is_empty() => Ok(Verified {
            account: auth.account.clone(),
            method: AuthMethod::Basic,
            enabled: auth.enabled,
        }),
        _ => Err(AuthFailure::Invalid),
    }
}

/// Authenticates a request whose body has been read (HMAC needs it; Basic
/// does not, see [`verify_basic`]).
pub fn authenticate(
    request: &Unverified,
    account: Option<&AccountAuth>,
    now_unix: i64,
) -> Result<Verified, AuthFailure> {
    let Unverified { headers, body } = request;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());

    if let Some(signature_header) = header(SIGNATURE_HEADER) {
        let timestamp = header(TIMESTAMP_HEADER).ok_or(AuthFailure::Malformed)?;
        let secrets: Vec<&[u8]> = match account {
            Some(auth) if !auth.hmac_secrets.is_empty() => auth
                .hmac_secrets
                .iter()
                .map(|s| s.expose_secret().as_bytes())
                .collect(),
            _ => vec![DECOY_SECRET],
        };
        signature::verify(&secrets, timestamp, signature_header, body, now_unix).map_err(|e| {
            match e {
                SignatureError::Stale => AuthFailure::Stale,
                SignatureError::Future => AuthFailure::Future,
                SignatureError::BadTimestamp | SignatureError::BadEncoding => {
                    AuthFailure::Malformed
                }
                SignatureError::Mismatch => AuthFailure::Invalid,
            }
        })?;
        return match account {
            Some(auth) if !auth.hmac_secrets.is_empty() => Ok(Verified {
                account: auth.account.clone(),
                method: AuthMethod::Hmac,
                enabled: auth.enabled,
            }),
            _ => Err(AuthFailure::Invalid),
        };
    }
    match presented(headers) {
        Presented::Basic { login, password } => verify_basic(&login, &password, account),
        Presented::Missing => Err(AuthFailure::Missing),
        Presented::Hmac | Presented::Malformed => Err(AuthFailure::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use secrecy::SecretString;

    use super::*;

    const NOW: i64 = 1_764_324_000;

    fn account(login: Option<&str>, passwords: &[&str], secrets: &[&str]) -> AccountAuth {
        AccountAuth {
            account: AccountId::parse("59808").unwrap(),
            login: login.map(str::to_owned),
            passwords: passwords
                .iter()
                .map(|p| SecretString::from(p.to_string()))
                .collect(),
            hmac_secrets: secrets
                .iter()
                .map(|p| SecretString::from(p.to_string()))
                .collect(),
            enabled: true,
        }
    }

    fn request(headers: &[(&str, String)], body: &'static [u8]) -> Unverified {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Unverified {
            headers: map,
            body: Bytes::from_static(body),
        }
    }

    fn basic(login: &str, password: &str) -> (&'static str, String) {
        (
            "authorization",
            signature::basic_authorization(login, password),
        )
    }

    fn hmac(secret: &str, ts: i64, body: &[u8]) -> [(&'static str, String); 2] {
        [
            (
                SIGNATURE_HEADER,
                signature::sign(secret.as_bytes(), ts, body),
            ),
            (TIMESTAMP_HEADER, ts.to_string()),
        ]
    }

    #[test]
    fn basic_with_the_right_login_and_password() {
        let acct = account(Some("hostaway"), &["pw"], &[]);
        let ok = authenticate(
            &request(&[basic("hostaway", "pw")], b"{}"),
            Some(&acct),
            NOW,
        )
        .unwrap();
        assert_eq!(ok.method, AuthMethod::Basic);
        assert_eq!(ok.account.as_str(), "59808");
        for (login, pw) in [("hostaway", "wrong"), ("other", "pw"), ("", "")] {
            assert_eq!(
                authenticate(&request(&[basic(login, pw)], b"{}"), Some(&acct), NOW).unwrap_err(),
                AuthFailure::Invalid
            );
        }
    }

    #[test]
    fn both_passwords_of_a_rotation_are_accepted() {
        let acct = account(None, &["new", "old"], &[]);
        for pw in ["new", "old"] {
            assert!(authenticate(&request(&[basic("x", pw)], b"{}"), Some(&acct), NOW).is_ok());
        }
    }

    #[test]
    fn hmac_over_the_raw_body() {
        let acct = account(None, &[], &["s3cret"]);
        let body = b"{\"a\":1}";
        let ok =
            authenticate(&request(&hmac("s3cret", NOW, body), body), Some(&acct), NOW).unwrap();
        assert_eq!(ok.method, AuthMethod::Hmac);
        assert_eq!(
            authenticate(&request(&hmac("nope", NOW, body), body), Some(&acct), NOW).unwrap_err(),
            AuthFailure::Invalid
        );
        assert_eq!(
            authenticate(
                &request(&hmac("s3cret", NOW - 301, body), body),
                Some(&acct),
                NOW
            )
            .unwrap_err(),
            AuthFailure::Stale
        );
        assert_eq!(
            authenticate(
                &request(&hmac("s3cret", NOW + 301, body), body),
                Some(&acct),
                NOW
            )
            .unwrap_err(),
            AuthFailure::Future
        );
    }

    #[test]
    fn unknown_accounts_fail_exactly_like_wrong_credentials() {
        let body = b"{}";
        assert_eq!(
            authenticate(&request(&[basic("x", "y")], body), None, NOW).unwrap_err(),
            AuthFailure::Invalid
        );
        assert_eq!(
            authenticate(&request(&hmac("s", NOW, body), body), None, NOW).unwrap_err(),
            AuthFailure::Invalid
        );
        // Even the decoy secret does not let a request in for an unknown account.
        let decoy = std::str::from_utf8(DECOY_SECRET).unwrap();
        assert_eq!(
            authenticate(&request(&hmac(decoy, NOW, body), body), None, NOW).unwrap_err(),
            AuthFailure::Invalid
        );
        assert_eq!(
            authenticate(&request(&[basic("x", decoy)], body), None, NOW).unwrap_err(),
            AuthFailure::Invalid
        );
    }

    #[test]
    fn a_method_the_account_has_not_configured_is_refused() {
        let basic_only = account(None, &["pw"], &[]);
        let body = b"{}";
        let decoy = std::str::from_utf8(DECOY_SECRET).unwrap();
        assert!(
            authenticate(
                &request(&hmac(decoy, NOW, body), body),
                Some(&basic_only),
                NOW
            )
            .is_err()
        );
        let hmac_only = account(None, &[], &["s"]);
        assert!(authenticate(&request(&[basic("x", decoy)], body), Some(&hmac_only), NOW).is_err());
    }

    #[test]
    fn no_credentials_at_all() {
        let acct = account(None, &["pw"], &["s"]);
        assert_eq!(
            authenticate(&request(&[], b"{}"), Some(&acct), NOW).unwrap_err(),
            AuthFailure::Missing
        );
        assert_eq!(
            authenticate(
                &request(&[("authorization", "Bearer x".into())], b"{}"),
                Some(&acct),
                NOW
            )
            .unwrap_err(),
            AuthFailure::Malformed
        );
    }
}
