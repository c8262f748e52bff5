//! Tolerant readers for one Hostaway record (a JSON object).
//!
//! Each reader looks a field up under its real name and then its aliases (the
//! specification's names), and returns a [`Patch`]: absent key → `Absent`,
//! `null` or `""` → `Clear`, a usable value → `Set`.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use domain::Patch;
use serde_json::{Map, Value};

use crate::{MappingError, Problem};

/// Longest free text kept from a payload (names, emails, channel ids).
pub const MAX_TEXT_LEN: usize = 500;

/// Something the mapping changed or left out so that a field TVL does not
/// need cannot sink the record. Names the field and the problem, never the
/// value (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub field: &'static str,
    pub action: AdjustmentAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustmentAction {
    /// Cut to this many characters.
    Truncated(usize),
    /// NUL characters removed (PostgreSQL text cannot hold them).
    NulRemoved,
    /// Left out: the record keeps what it knew of the field.
    Dropped(Problem),
}

impl AdjustmentAction {
    /// A stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AdjustmentAction::Truncated(_) => "truncated",
            AdjustmentAction::NulRemoved => "nul_removed",
            AdjustmentAction::Dropped(_) => "dropped",
        }
    }
}

impl std::fmt::Display for Adjustment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.action {
            AdjustmentAction::Truncated(len) => {
                write!(f, "`{}` truncated to {len} characters", self.field)
            }
            AdjustmentAction::NulRemoved => {
                write!(f, "`{}`: NUL characters removed", self.field)
            }
            AdjustmentAction::Dropped(problem) => {
                write!(f, "`{}` left out: {problem}", self.field)
            }
        }
    }
}

/// The adjustments made while mapping one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjustments(Vec<Adjustment>);

impl Adjustments {
    pub fn note(&mut self, field: &'static str, action: AdjustmentAction) {
        self.0.push(Adjustment { field, action });
    }

    /// The value of an optional field, or `Absent` (noted) when it cannot be read.
    pub fn optional<T>(&mut self, read: Result<Patch<T>, MappingError>) -> Patch<T> {
        match read {
            Ok(patch) => patch,
            Err(error) => {
                self.note(error.field, AdjustmentAction::Dropped(error.problem));
                Patch::Absent
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Adjustment> {
        self.0.iter()
    }

    pub fn into_vec(self) -> Vec<Adjustment> {
        self.0
    }
}

/// A mapped record and what was adjusted to map it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped<T> {
    pub value: T,
    pub adjustments: Vec<Adjustment>,
}

#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Record<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self { map }
    }

    /// The value under the first of `names` that is present.
    pub fn raw(&self, names: &[&str]) -> Option<&'a Value> {
        names.iter().find_map(|name| self.map.get(*name))
    }

    /// A Hostaway id: an integer, or a string of id characters.
    pub fn id(&self, field: &'static str, names: &[&str]) -> Result<Patch<String>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        match value {
            Value::Null => Ok(Patch::Clear),
            Value::Number(n) => {
                if let Some(i) = n.as_u64() {
                    Ok(Patch::Set(i.to_string()))
                } else if let Some(f) = n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                {
                    Ok(Patch::Set(format!("{f:.0}")))
                } else {
                    Err(MappingError::new(
                        field,
                        Problem::WrongType("a non-negative integer id"),
                    ))
                }
            }
            Value::String(s) if s.trim().is_empty() => Ok(Patch::Clear),
            Value::String(s) => Ok(Patch::Set(s.trim().to_owned())),
            _ => Err(MappingError::new(
                field,
                Problem::WrongType("an id (integer or string)"),
            )),
        }
    }

    /// Free text, trimmed. Numbers are accepted as their decimal text (a phone
    /// number sent as a number is still a phone number).
    pub fn text(&self, field: &'static str, names: &[&str]) -> Result<Patch<String>, MappingError> {
        self.text_up_to(field, names, MAX_TEXT_LEN)
    }

    pub fn text_up_to(
        &self,
        field: &'static str,
        names: &[&str],
        max_len: usize,
    ) -> Result<Patch<String>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        let text = match value {
            Value::Null => return Ok(Patch::Clear),
            Value::String(s) => s.trim(),
            Value::Number(n) => return Ok(Patch::Set(n.to_string())),
            _ => return Err(MappingError::new(field, Problem::WrongType("text"))),
        };
        if text.is_empty() {
            return Ok(Patch::Clear);
        }
        if text.chars().count() > max_len {
            return Err(MappingError::new(field, Problem::TooLong(max_len)));
        }
        if text.contains('\0') {
            return Err(MappingError::new(field, Problem::NulCharacter));
        }
        Ok(Patch::Set(text.to_owned()))
    }

    /// Free text TVL can do without exactly as sent: over `max_len` characters
    /// it is cut, NUL characters are removed, and a value that is not text
    /// is left out; each is noted in `notes`.
    pub fn lenient_text(
        &self,
        field: &'static str,
        names: &[&str],
        max_len: usize,
        notes: &mut Adjustments,
    ) -> Patch<String> {
        let Some(value) = self.raw(names) else {
            return Patch::Absent;
        };
        let text = match value {
            Value::Null => return Patch::Clear,
            Value::String(s) => s.trim(),
            Value::Number(n) => return Patch::Set(n.to_string()),
            _ => {
                notes.note(field, AdjustmentAction::Dropped(Problem::WrongType("text")));
                return Patch::Absent;
            }
        };
        let mut text = if text.contains('\0') {
            notes.note(field, AdjustmentAction::NulRemoved);
            text.replace('\0', "").trim().to_owned()
        } else {
            text.to_owned()
        };
        if text.is_empty() {
            return Patch::Clear;
        }
        if let Some((cut, _)) = text.char_indices().nth(max_len) {
            text.truncate(cut);
            notes.note(field, AdjustmentAction::Truncated(max_len));
        }
        Patch::Set(text)
    }

    /// An integer sent as an int, an integral float (`2.0`) or a digit string.
    pub fn int(&self, field: &'static str, names: &[&str]) -> Result<Patch<i64>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        let wrong = || MappingError::new(field, Problem::WrongType("an integer"));
        match value {
            Value::Null => Ok(Patch::Clear),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Patch::Set(i))
                } else {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| Patch::Set(f as i64))
                        .ok_or_else(wrong)
                }
            }
            Value::String(s) if s.trim().is_empty() => Ok(Patch::Clear),
            Value::String(s) => s.trim().parse::<i64>().map(Patch::Set).map_err(|_| wrong()),
            _ => Err(wrong()),
        }
    }

    /// A count such as guests or nights: an integer in `0..=max`.
    pub fn count(
        &self,
        field: &'static str,
        names: &[&str],
        max: i64,
    ) -> Result<Patch<i32>, MappingError> {
        match self.int(field, names)? {
            Patch::Set(n) if (0..=max).contains(&n) => Ok(Patch::Set(n as i32)),
            Patch::Set(_) => Err(MappingError::new(
                field,
                Problem::OutOfRange("a count between 0 and the maximum"),
            )),
            Patch::Clear => Ok(Patch::Clear),
            Patch::Absent => Ok(Patch::Absent),
        }
    }

    /// A flag sent as 0/1, true/false, or their strings.
    pub fn flag(&self, field: &'static str, names: &[&str]) -> Result<Patch<bool>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        let wrong =
            || MappingError::new(field, Problem::WrongType("a boolean (0/1 or true/false)"));
        match value {
            Value::Null => Ok(Patch::Clear),
            Value::Bool(b) => Ok(Patch::Set(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(0) => Ok(Patch::Set(false)),
                Some(1) => Ok(Patch::Set(true)),
                _ => Err(wrong()),
            },
            Value::String(s) => match s.trim() {
                "" => Ok(Patch::Clear),
                "0" | "false" => Ok(Patch::Set(false)),
                "1" | "true" => Ok(Patch::Set(true)),
                _ => Err(wrong()),
            },
            _ => Err(wrong()),
        }
    }

    /// A decimal amount as text, exactly as sent: `483.47`, `267`, `"267.00"`.
    pub fn decimal(
        &self,
        field: &'static str,
        names: &[&str],
    ) -> Result<Patch<String>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        match value {
            Value::Null => Ok(Patch::Clear),
            Value::Number(n) => Ok(Patch::Set(n.to_string())),
            Value::String(s) if s.trim().is_empty() => Ok(Patch::Clear),
            Value::String(s) if s.len() <= 64 => Ok(Patch::Set(s.trim().to_owned())),
            _ => Err(MappingError::new(
                field,
                Problem::WrongType("a decimal number"),
            )),
        }
    }

    /// A calendar date, `YYYY-MM-DD`. A date-time is cut to its date.
    pub fn date(
        &self,
        field: &'static str,
        names: &[&str],
    ) -> Result<Patch<NaiveDate>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        match value {
            Value::Null => Ok(Patch::Clear),
            Value::String(s) if s.trim().is_empty() => Ok(Patch::Clear),
            Value::String(s) => parse_date(s.trim())
                .map(Patch::Set)
                .ok_or_else(|| MappingError::new(field, Problem::WrongType("a date YYYY-MM-DD"))),
            _ => Err(MappingError::new(
                field,
                Problem::WrongType("a date YYYY-MM-DD"),
            )),
        }
    }

    /// A UTC date-time: Hostaway's `Y-m-d H:i:s` (UTC per its documentation), or
    /// RFC 3339 with an offset (the specification's `2025-10-24T10:00:00Z`).
    pub fn datetime(
        &self,
        field: &'static str,
        names: &[&str],
    ) -> Result<Patch<NaiveDateTime>, MappingError> {
        let Some(value) = self.raw(names) else {
            return Ok(Patch::Absent);
        };
        match value {
            Value::Null => Ok(Patch::Clear),
            Value::String(s) if s.trim().is_empty() => Ok(Patch::Clear),
            Value::String(s) => parse_datetime(s.trim()).map(Patch::Set).ok_or_else(|| {
                MappingError::new(
                    field,
                    Problem::WrongType("a date-time (Y-m-d H:i:s or RFC 3339)"),
                )
            }),
            _ => Err(MappingError::new(
                field,
                Problem::WrongType("a date-time (Y-m-d H:i:s or RFC 3339)"),
            )),
        }
    }
}

/// `YYYY-MM-DD`, optionally followed by a time (` ` or `T` …), which is cut.
/// The shape is checked byte by byte before chrono sees it: chrono accepts
/// one-digit months, and slicing a shorter string would panic.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let bytes = s.as_bytes();
    let shaped = bytes.len() >= 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[..10]
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
        && (bytes.len() == 10 || matches!(bytes[10], b' ' | b'T'));
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.naive_utc());
    }
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: &Value) -> Record<'_> {
        Record::new(value.as_object().unwrap())
    }

    #[test]
    fn ids_may_be_integers_or_strings() {
        let v = json!({"a": 43970841, "b": "43970841", "c": 13.0, "d": "", "e": null});
        let r = record(&v);
        assert_eq!(r.id("a", &["a"]).unwrap(), Patch::Set("43970841".into()));
        assert_eq!(r.id("b", &["b"]).unwrap(), Patch::Set("43970841".into()));
        assert_eq!(r.id("c", &["c"]).unwrap(), Patch::Set("13".into()));
        assert_eq!(r.id("d", &["d"]).unwrap(), Patch::Clear);
        assert_eq!(r.id("e", &["e"]).unwrap(), Patch::Clear);
        assert_eq!(r.id("f", &["f"]).unwrap(), Patch::Absent);
        assert!(r.id("x", &["a"]).is_ok());
        assert!(record(&json!({"a": -1})).id("a", &["a"]).is_err());
        assert!(record(&json!({"a": [1]})).id("a", &["a"]).is_err());
    }

    #[test]
    fn empty_string_and_null_both_clear_text() {
        let v = json!({"a": "", "b": null, "c": "  x  ", "d": 15555550100_i64});
        let r = record(&v);
        assert_eq!(r.text("a", &["a"]).unwrap(), Patch::Clear);
        assert_eq!(r.text("b", &["b"]).unwrap(), Patch::Clear);
        assert_eq!(r.text("c", &["c"]).unwrap(), Patch::Set("x".into()));
        assert_eq!(
            r.text("d", &["d"]).unwrap(),
            Patch::Set("15555550100".into())
        );
        assert!(record(&json!({"a": "a\u{0}b"})).text("a", &["a"]).is_err());
        assert!(
            record(&json!({"a": "x".repeat(501)}))
                .text("a", &["a"])
                .is_err()
        );
    }

    #[test]
    fn lenient_text_truncates_strips_and_notes() {
        let long = "é".repeat(MAX_TEXT_LEN + 20);
        let v = json!({"a": long, "b": "x\u{0}y", "c": {"k": 1}, "d": "ok", "e": "\u{0}"});
        let r = record(&v);
        let mut notes = Adjustments::default();
        let Patch::Set(a) = r.lenient_text("a", &["a"], MAX_TEXT_LEN, &mut notes) else {
            panic!("text expected")
        };
        assert_eq!(a.chars().count(), MAX_TEXT_LEN);
        assert_eq!(
            r.lenient_text("b", &["b"], MAX_TEXT_LEN, &mut notes),
            Patch::Set("xy".into())
        );
        assert_eq!(
            r.lenient_text("c", &["c"], MAX_TEXT_LEN, &mut notes),
            Patch::Absent
        );
        assert_eq!(
            r.lenient_text("d", &["d"], MAX_TEXT_LEN, &mut notes),
            Patch::Set("ok".into())
        );
        assert_eq!(
            r.lenient_text("e", &["e"], MAX_TEXT_LEN, &mut notes),
            Patch::Clear
        );
        let labels: Vec<_> = notes.iter().map(|n| (n.field, n.action.label())).collect();
        assert_eq!(
            labels,
            vec![
                ("a", "truncated"),
                ("b", "nul_removed"),
                ("c", "dropped"),
                ("e", "nul_removed")
            ]
        );
        assert!(!notes.iter().any(|n| n.to_string().contains("ok")));
    }

    #[test]
    fn flags_are_0_1_or_true_false() {
        let v = json!({"a": 0, "b": 1, "c": true, "d": false, "e": "1", "f": null, "g": 2});
        let r = record(&v);
        assert_eq!(r.flag("a", &["a"]).unwrap(), Patch::Set(false));
        assert_eq!(r.flag("b", &["b"]).unwrap(), Patch::Set(true));
        assert_eq!(r.flag("c", &["c"]).unwrap(), Patch::Set(true));
        assert_eq!(r.flag("d", &["d"]).unwrap(), Patch::Set(false));
        assert_eq!(r.flag("e", &["e"]).unwrap(), Patch::Set(true));
        assert_eq!(r.flag("f", &["f"]).unwrap(), Patch::Clear);
        assert!(r.flag("g", &["g"]).is_err());
    }

    #[test]
    fn numbers_may_be_int_float_or_string() {
        let v = json!({"a": 5, "b": 5.0, "c": "5", "d": 5.5, "e": "x"});
        let r = record(&v);
        for k in ["a", "b", "c"] {
            assert_eq!(r.int("n", &[k]).unwrap(), Patch::Set(5), "{k}");
        }
        assert!(r.int("n", &["d"]).is_err());
        assert!(r.int("n", &["e"]).is_err());
        assert_eq!(r.decimal("n", &["d"]).unwrap(), Patch::Set("5.5".into()));
        assert_eq!(r.decimal("n", &["a"]).unwrap(), Patch::Set("5".into()));
    }

    #[test]
    fn aliases_are_read_in_order() {
        let v = json!({"checkIn": "2025-11-15"});
        let r = record(&v);
        assert_eq!(
            r.date("arrivalDate", &["arrivalDate", "checkIn"]).unwrap(),
            Patch::Set(NaiveDate::from_ymd_opt(2025, 11, 15).unwrap())
        );
    }

    #[test]
    fn datetimes_in_both_formats_are_utc() {
        let v = json!({"a": "2024-08-16 13:03:37", "b": "2024-08-16T15:03:37+02:00", "c": "16/08/2024"});
        let r = record(&v);
        let a = r.datetime("a", &["a"]).unwrap();
        assert_eq!(a, r.datetime("b", &["b"]).unwrap());
        assert!(r.datetime("c", &["c"]).is_err());
    }

    #[test]
    fn dates_refuse_garbage() {
        for bad in [
            "2025-13-01",
            "2025-02-30",
            "tomorrow",
            "2025-11-15x",
            "2026-4-1",
            "2026-04-1",
            "2026-4-01",
            "2026-04-01é",
            "２０２６-04-01",
        ] {
            assert!(
                record(&json!({"d": bad})).date("d", &["d"]).is_err(),
                "{bad}"
            );
        }
        assert!(
            record(&json!({"d": "2025-11-15 00:00:00"}))
                .date("d", &["d"])
                .is_ok()
        );
    }
}
