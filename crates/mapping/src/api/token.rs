//! `POST /v1/accessTokens` answers `{token_type, expires_in, access_token}`,
//! or (as one client reports) the same wrapped in `{status, result}`. The
//! lifetime is `expires_in`; when it is missing, the JWT's `exp - iat`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::ApiParseError;

pub struct AccessToken {
    pub token: SecretString,
    /// How long the token is valid from issue.
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `exp - iat` of a JWT, without verifying it (only its lifetime is wanted).
pub fn jwt_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let exp = seconds(claims.get("exp"))?;
    let iat = seconds(claims.get("iat"))?;
    exp.checked_sub(iat).map(Duration::from_secs)
}

pub fn parse_access_token(body: &[u8]) -> Result<AccessToken, ApiParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiParseError::NotJson)?;
    let Value::Object(outer) = value else {
        return Err(ApiParseError::NotAnObject);
    };
    let map = match outer.get("result") {
        Some(Value::Object(inner)) => inner,
        _ => &outer,
    };
    let token = match map.get("access_token") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(ApiParseError::WrongType("access_token")),
    };
    let expires_in = seconds(map.get("expires_in"))
        .map(Duration::from_secs)
        .or_else(|| jwt_lifetime(&token));
    Ok(AccessToken {
        token: SecretString::from(token),
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn bare_and_wrapped() {
        let bare = parse_access_token(
            br#"{"token_type":"Bearer","expires_in":15897600,"access_token":"abc"}"#,
        )
        .unwrap();
        assert_eq!(bare.token.expose_secret(), "abc");
        assert_eq!(bare.expires_in, Some(Duration::from_secs(15_897_600)));
        let wrapped = parse_access_token(
            br#"{"status":"success","result":{"token_type":"Bearer","access_token":"t","expires_in":"86400"}}"#,
        )
        .unwrap();
        assert_eq!(wrapped.expires_in, Some(Duration::from_secs(86_400)));
        assert!(parse_access_token(br#"{"error":"invalid_client"}"#).is_err());
    }

    #[test]
    fn the_jwt_gives_the_lifetime_when_expires_in_is_missing() {
        let claims =
            URL_SAFE_NO_PAD.encode(br#"{"aud":"59808","iat":1700000000,"exp":1763072000}"#);
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln");
        let token =
            parse_access_token(format!(r#"{{"access_token":"{jwt}"}}"#).as_bytes()).unwrap();
        assert_eq!(token.expires_in, Some(Duration::from_secs(63_072_000)));
    }

    #[test]
    fn debug_hides_the_token() {
        let token = parse_access_token(br#"{"access_token":"super-secret"}"#).unwrap();
        assert!(!format!("{token:?}").contains("super-secret"));
    }
}
