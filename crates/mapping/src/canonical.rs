//! Canonical JSON: object keys sorted, no whitespace. Two payloads that differ
//! only in key order or formatting have the same canonical bytes, hence the same
//! digest and the same webhook id. Written out by hand so that no serde_json
//! feature switched on elsewhere in the build (`preserve_order`) can change it.

use std::io::Write;

use serde_json::{Map, Value};

pub fn to_canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write(value, &mut out);
    out
}

/// The canonical bytes of an object, without building a `Value` around it.
pub fn object_to_canonical_bytes(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    write_object(map, &mut out);
    out
}

/// Feeds the canonical bytes of an object to a hash (or any writer) as they
/// are made: no buffer the size of the record, no allocation per string.
pub fn write_canonical_object(map: &Map<String, Value>, out: &mut impl Write) {
    write_object(map, out);
}

/// Lets the canonical bytes go straight into a SHA-256.
pub(crate) struct HashWriter<'a>(pub &'a mut sha2::Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Writing to a hasher or a Vec cannot fail; a writer that fails gets the
// rest of the bytes dropped, never a panic.
fn write(value: &Value, out: &mut impl Write) {
    match value {
        Value::Null => put(out, b"null"),
        Value::Bool(b) => put(out, if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            put(out, b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    put(out, b",");
                }
                write(item, out);
            }
            put(out, b"]");
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn put(out: &mut impl Write, bytes: &[u8]) {
    let _ = out.write_all(bytes);
}

fn write_object(map: &Map<String, Value>, out: &mut impl Write) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    put(out, b"{");
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            put(out, b",");
        }
        write_string(key, out);
        put(out, b":");
        write(value, out);
    }
    put(out, b"}");
}

fn write_string(s: &str, out: &mut impl Write) {
    // serde_json's string escaping is canonical already (it never fails on
    // &str), written straight into `out`.
    if serde_json::to_writer(&mut *out, s).is_err() {
        put(out, b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2.5], "x": "é"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"é","y":[1,2.5]},"b":1}"#).unwrap();
        assert_eq!(to_canonical_bytes(&a), to_canonical_bytes(&b));
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&a)).unwrap(),
            r#"{"a":{"x":"é","y":[1,2.5]},"b":1}"#
        );
    }

    #[test]
    fn streamed_and_buffered_bytes_are_the_same() {
        let v: Value = serde_json::from_str(
            r#"{"b": [1, -2.5e3, null, true], "a": {"y": "line\nbreak \"q\" é", "x": {}}, "c": 0}"#,
        )
        .unwrap();
        let Value::Object(map) = &v else { panic!() };
        let mut streamed = Vec::new();
        write_canonical_object(map, &mut streamed);
        assert_eq!(streamed, object_to_canonical_bytes(map));
        assert_eq!(streamed, to_canonical_bytes(&v));
    }

    #[test]
    fn different_values_differ() {
        let a: Value = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": "1"}"#).unwrap();
        assert_ne!(to_canonical_bytes(&a), to_canonical_bytes(&b));
    }
}
