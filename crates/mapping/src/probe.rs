//! The account an unauthenticated body names, found without building a JSON
//! tree: until the sender is authenticated, the body is only scanned for
//! `accountId` (at the top, else in `data` or `payload.data`); every other
//! value is skipped without being kept.

use std::fmt;

use domain::AccountId;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The account the body claims, if it names a valid one.
pub fn probe_account(body: &[u8]) -> Option<AccountId> {
    let probe = serde_json::from_slice::<Envelope>(body).ok()?;
    AccountId::parse(probe.top.or(probe.record)?).ok()
}

#[derive(Default)]
struct Envelope {
    top: Option<String>,
    record: Option<String>,
}

/// An id as Hostaway sends it: an integer or a string; anything else is none.
struct Id(Option<String>);
/// A record's `accountId`, if the value is a record at all.
struct RecordAccount(Option<String>);
/// `payload.data.accountId`.
struct PayloadAccount(Option<String>);

/// Visits any JSON value; maps go to `on_map`, scalars to `on_scalar`.
macro_rules! any_value_visitor {
    ($name:ident, $out:ty, $expecting:literal, |$map:ident| $on_map:block, |$scalar:ident| $on_scalar:expr) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $out;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<$out, A::Error> $on_map
                    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Default::default())
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$out, E> {
                        let $scalar = Some(n.to_string());
                        Ok($on_scalar)
                    }
                    fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
                        Ok(Default::default())
                    }
                    fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
                        Ok(Default::default())
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$out, E> {
                        let $scalar = Some(s.trim().to_owned());
                        Ok($on_scalar)
                    }
                    fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
                        Ok(Default::default())
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
                        Ok(Default::default())
                    }
                }
                deserializer.deserialize_any(V).map($name)
            }
        }
    };
}

struct EnvelopeValue(Envelope);
any_value_visitor!(
    EnvelopeValue,
    Envelope,
    "a webhook envelope",
    |map| {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "accountId" => envelope.top = map.next_value::<Id>()?.0,
                "data" => {
                    if let Some(found) = map.next_value::<RecordAccount>()?.0 {
                        envelope.record = Some(found);
                    }
                }
                "payload" => {
                    let found = map.next_value::<PayloadAccount>()?.0;
                    envelope.record = envelope.record.or(found);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    },
    |_scalar| Envelope::default()
);

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EnvelopeValue::deserialize(deserializer).map(|v| v.0)
    }
}

any_value_visitor!(
    Id,
    Option<String>,
    "an id",
    |map| {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    },
    |scalar| scalar
);

any_value_visitor!(
    RecordAccount,
    Option<String>,
    "a record",
    |map| {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "accountId" {
                found = map.next_value::<Id>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    },
    |_scalar| None
);

any_value_visitor!(
    PayloadAccount,
    Option<String>,
    "a payload",
    |map| {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" {
                found = map.next_value::<RecordAccount>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    },
    |_scalar| None
);

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(body: &str) -> Option<String> {
        probe_account(body.as_bytes()).map(|a| a.to_string())
    }

    #[test]
    fn finds_the_account_where_parse_webhook_does() {
        assert_eq!(
            probe(r#"{"event":"x","accountId":59808,"data":{"id":1}}"#),
            Some("59808".into())
        );
        assert_eq!(
            probe(r#"{"data":{"id":1,"accountId":"151651"},"event":"message.received"}"#),
            Some("151651".into())
        );
        assert_eq!(
            probe(r#"{"payload":{"data":{"accountId":7}},"event":"x"}"#),
            Some("7".into())
        );
        assert_eq!(
            probe(r#"{"accountId":1,"data":{"accountId":2}}"#),
            Some("1".into())
        );
        assert_eq!(
            probe(r#"{"data":"test","accountId":"a_1"}"#),
            Some("a_1".into())
        );
    }

    #[test]
    fn names_nothing_when_there_is_nothing_valid() {
        for body in [
            "{not json",
            "[1,2]",
            "{}",
            r#"{"accountId":-1}"#,
            r#"{"accountId":"a.b"}"#,
            r#"{"accountId":{"x":1}}"#,
            r#"{"data":[{"accountId":1}]}"#,
            "",
            "\"59808\"",
        ] {
            assert_eq!(probe(body), None, "{body}");
        }
    }
}
