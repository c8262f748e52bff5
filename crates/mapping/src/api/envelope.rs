//! `{status, result, limit, offset, count, page, totalPages}`, in all its
//! variants: real list responses carry only `status, result, count, limit,
//! offset`; some documented ones only `status, result`; paging past the end
//! gives `result: []`; a failure is `status: "fail"` with the text in `result`
//! or `message` (sometimes on an HTTP 200).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStatus {
    Success,
    Fail,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `None` when the body has no `status` (bare OAuth-style bodies).
    pub status: Option<ApiStatus>,
    pub result: Value,
    pub count: Option<u64>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub page: Option<u64>,
    pub total_pages: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiParseError {
    #[error("response is not valid JSON")]
    NotJson,
    #[error("response is not a JSON object")]
    NotAnObject,
    #[error("response has no `result`")]
    MissingResult,
    #[error("`{0}` has an unexpected type")]
    WrongType(&'static str),
    #[error("record: {0}")]
    Record(#[from] crate::MappingError),
}

fn number(map: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, ApiParseError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(ApiParseError::WrongType(key)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiParseError::WrongType(key)),
        Some(_) => Err(ApiParseError::WrongType(key)),
    }
}

pub fn parse_envelope(body: &[u8]) -> Result<Envelope, ApiParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiParseError::NotJson)?;
    let Value::Object(mut map) = value else {
        return Err(ApiParseError::NotAnObject);
    };
    let status = match map.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("success") => Some(ApiStatus::Success),
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("fail") || s.eq_ignore_ascii_case("error") =>
        {
            Some(ApiStatus::Fail)
        }
        // An HTTP status number or anything else: judge by the rest.
        Some(_) => None,
    };
    let result = match (status, map.remove("result")) {
        (_, Some(result)) => result,
        (Some(ApiStatus::Fail), None) => Value::Null,
        (None, None) => Value::Object(map.clone()),
        (Some(ApiStatus::Success), None) => return Err(ApiParseError::MissingResult),
    };
    Ok(Envelope {
        status,
        result,
        count: number(&map, "count")?,
        limit: number(&map, "limit")?,
        offset: number(&map, "offset")?,
        page: number(&map, "page")?,
        total_pages: number(&map, "totalPages")?,
    })
}

/// Longest error text kept from a response.
const MAX_ERROR_TEXT: usize = 300;

/// The human-readable error in a failure body: `message`, else a string
/// `result`, else OAuth's `error_description`/`error`. Cut and cleaned: it goes
/// into logs and errors.
pub fn error_text(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let map = value.as_object()?;
    let text = ["message", "result", "error_description", "error"]
        .iter()
        .find_map(|key| {
            map.get(*key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
        })?;
    Some(
        text.chars()
            .filter(|c| !c.is_control())
            .take(MAX_ERROR_TEXT)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_and_documented_variants() {
        let real = parse_envelope(
            br#"{"status":"success","result":[{"id":1}],"count":707,"limit":100,"offset":0}"#,
        )
        .unwrap();
        assert_eq!(real.status, Some(ApiStatus::Success));
        assert_eq!(
            (real.count, real.limit, real.offset, real.page),
            (Some(707), Some(100), Some(0), None)
        );
        let bare = parse_envelope(br#"{"status":"success","result":[]}"#).unwrap();
        assert_eq!(bare.result, Value::Array(vec![]));
        let docs = parse_envelope(br#"{"status":"success","result":"x","limit":null,"offset":null,"count":1,"page":1,"totalPages":1}"#).unwrap();
        assert_eq!(docs.total_pages, Some(1));
        assert_eq!(
            parse_envelope(br#"{"status":"success"}"#),
            Err(ApiParseError::MissingResult)
        );
        assert_eq!(parse_envelope(b"<html>"), Err(ApiParseError::NotJson));
    }

    #[test]
    fn error_text_comes_from_message_or_result() {
        assert_eq!(
            error_text(br#"{"status":"fail","message":"Resource not found"}"#).as_deref(),
            Some("Resource not found")
        );
        assert_eq!(
            error_text(br#"{"status":"fail","result":"validation error"}"#).as_deref(),
            Some("validation error")
        );
        assert_eq!(
            error_text(
                br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
            )
            .as_deref(),
            Some("Client authentication failed")
        );
        assert_eq!(error_text(b"not json"), None);
        let long = format!(r#"{{"message":"{}\u0007"}}"#, "x".repeat(500));
        assert_eq!(error_text(long.as_bytes()).unwrap().len(), 300);
    }
}
