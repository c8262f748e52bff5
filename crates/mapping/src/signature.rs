//! Webhook authentication primitives.
//!
//! Real Hostaway sends HTTP Basic credentials (the unified webhook's
//! `login`/`password`). The specification signs instead: `x-hostaway-signature`
//! is the hex HMAC-SHA256 of `{timestamp}.{raw body}` and `x-hostaway-timestamp`
//! the unix seconds, accepted within five minutes either way. Every comparison of
//! a secret is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "x-hostaway-signature";
pub const TIMESTAMP_HEADER: &str = "x-hostaway-timestamp";
/// How far a signed timestamp may be from now, either way.
pub const MAX_SKEW_SECS: i64 = 300;
/// At most this many signatures are tried from one header.
const MAX_CANDIDATES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("timestamp is not unix seconds")]
    BadTimestamp,
    #[error("timestamp is more than five minutes old")]
    Stale,
    #[error("timestamp is more than five minutes in the future")]
    Future,
    #[error("signature is not hex-encoded HMAC-SHA256")]
    BadEncoding,
    #[error("signature does not match")]
    Mismatch,
}

/// The hex signature the specification puts in `x-hostaway-signature`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of every length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks the timestamp window, then the signature against each secret (the
/// current one and, during a rotation, the previous one). The header may hold
/// several comma-separated signatures, each optionally prefixed `sha256=`.
pub fn verify(
    secrets: &[&[u8]],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if timestamp < now_unix - MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    if timestamp > now_unix + MAX_SKEW_SECS {
        return Err(SignatureError::Future);
    }
    let candidates: Vec<Vec<u8>> = signature_header
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(MAX_CANDIDATES)
        .map(|s| s.strip_prefix("sha256=").unwrap_or(s))
        .map(hex::decode)
        .collect::<Result<_, _>>()
        .map_err(|_| SignatureError::BadEncoding)?;
    if candidates.is_empty() || candidates.iter().any(|c| c.len() != 32) {
        return Err(SignatureError::BadEncoding);
    }
    let mut matched = false;
    for secret in secrets {
        let expected = mac(secret, timestamp, body);
        for candidate in &candidates {
            // No early return: every pair is checked.
            matched |= expected.clone().verify_slice(candidate).is_ok();
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The `Authorization` value for HTTP Basic.
pub fn basic_authorization(login: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{login}:{password}")))
}

/// Splits an `Authorization: Basic …` value into login and password.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (login, password) = decoded.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

/// Constant-time equality of two secrets of any lengths: their digests are
/// compared, so neither content nor length leaks through timing.
pub fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_324_000;

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let sig = sign(b"s3cret", NOW, b"{\"a\":1}");
        assert_eq!(
            verify(&[b"s3cret"], &NOW.to_string(), &sig, b"{\"a\":1}", NOW),
            Ok(())
        );
        let prefixed = format!("sha256={sig}");
        assert_eq!(
            verify(&[b"s3cret"], &NOW.to_string(), &prefixed, b"{\"a\":1}", NOW),
            Ok(())
        );
    }

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        // Here the data is "{ts}.{body}", so build it to match.
        let body = b"ya want for nothing?";
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"0.");
        m.update(body);
        assert_eq!(
            sign(b"Jefe", 0, body),
            hex::encode(m.finalize().into_bytes())
        );
    }

    #[test]
    fn either_secret_of_a_rotation_verifies() {
        let body = b"x";
        let old = sign(b"old", NOW, body);
        let new = sign(b"new", NOW, body);
        let secrets: [&[u8]; 2] = [b"new", b"old"];
        assert!(verify(&secrets, &NOW.to_string(), &old, body, NOW).is_ok());
        assert!(verify(&secrets, &NOW.to_string(), &new, body, NOW).is_ok());
        assert_eq!(
            verify(&[b"other"], &NOW.to_string(), &new, body, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_signature_covers_body_and_timestamp() {
        let sig = sign(b"k", NOW, b"body");
        assert_eq!(
            verify(&[b"k"], &NOW.to_string(), &sig, b"b0dy", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&[b"k"], &(NOW + 1).to_string(), &sig, b"body", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_window_is_five_minutes_each_way() {
        let body = b"b";
        let at = |ts: i64| verify(&[b"k"], &ts.to_string(), &sign(b"k", ts, body), body, NOW);
        assert!(at(NOW - 300).is_ok());
        assert!(at(NOW + 300).is_ok());
        assert_eq!(at(NOW - 301), Err(SignatureError::Stale));
        assert_eq!(at(NOW + 301), Err(SignatureError::Future));
        assert_eq!(
            verify(&[b"k"], "yesterday", "00", body, NOW),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn malformed_signatures_are_refused() {
        for bad in ["", "zz", "abcd", &"0".repeat(63)] {
            assert_eq!(
                verify(&[b"k"], &NOW.to_string(), bad, b"b", NOW),
                Err(SignatureError::BadEncoding),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn basic_credentials_round_trip() {
        let header = basic_authorization("hostaway", "p:ss word");
        assert_eq!(
            parse_basic(&header),
            Some(("hostaway".into(), "p:ss word".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert!(secrets_match(b"a", b"a"));
        assert!(!secrets_match(b"a", b"ab"));
    }
}
