//! How payload timestamps are read: chrono's strict RFC 3339 parser first, its lenient one
//! only for what the strict one refuses.
//!
//! chrono's own `Deserialize` goes straight to the lenient parser (ISO 8601 extensions, years
//! beyond 9999), which is several times slower; every payload carries a few timestamps, so
//! it was the largest single cost of folding a log (`nsm vwires --at`, start-up replay).
//! What the runtime writes is always strict RFC 3339 (chrono's `Serialize`, kept as is), and
//! anything that read before still reads, through the fallback.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use serde::de::{self, Deserializer, Visitor};

/// Parses a timestamp: strict RFC 3339 first, then chrono's lenient form.
pub fn parse_utc(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| text.parse::<DateTime<FixedOffset>>())
        .map(|at| at.with_timezone(&Utc))
}

struct UtcVisitor;

impl Visitor<'_> for UtcVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an RFC 3339 date and time")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_utc(text).map_err(E::custom)
    }
}

/// `#[serde(deserialize_with = "crate::timestamp::utc")]` on a `DateTime<Utc>` field.
pub(crate) fn utc<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(UtcVisitor)
}

/// The same for an `Option<DateTime<Utc>>` field (`null` or absent is `None`).
pub(crate) fn utc_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("an RFC 3339 date and time, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            utc(deserializer).map(Some)
        }
    }

    deserializer.deserialize_option(OptionVisitor)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Stamped {
        #[serde(deserialize_with = "utc")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "utc_option")]
        expires: Option<DateTime<Utc>>,
    }

    fn read(json: &str) -> Result<Stamped, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn reads_what_chrono_reads_and_refuses_what_it_refuses() {
        for text in [
            "2026-12-03T13:57:23.379177Z",
            "2026-12-03T13:57:23Z",
            "2026-12-03T14:57:23.5+01:00",
            "2026-12-03 13:57:23Z",
            "+262142-12-31T23:59:59Z",
            "2026-12-03T13:57:23.123456789Z",
        ] {
            let ours = parse_utc(text).ok();
            let chronos = text
                .parse::<DateTime<FixedOffset>>()
                .ok()
                .map(|at| at.with_timezone(&Utc));
            assert_eq!(ours, chronos, "{text}");
            assert!(ours.is_some(), "{text}");
        }
        for text in [
            "",
            "yesterday",
            "2026-13-03T13:57:23Z",
            "2026-12-03T13:57:23",
        ] {
            assert!(parse_utc(text).is_err(), "{text}");
            assert!(text.parse::<DateTime<FixedOffset>>().is_err(), "{text}");
        }
    }

    #[test]
    fn fields_read_as_with_chronos_own_deserialize() {
        let stamped = read(r#"{"at":"2026-12-03T13:57:23.379177Z","expires":null}"#).unwrap();
        let at: DateTime<Utc> = serde_json::from_str(r#""2026-12-03T13:57:23.379177Z""#).unwrap();
        assert_eq!(stamped.at, at);
        assert_eq!(stamped.expires, None);
        let stamped = read(r#"{"at":"2026-12-03T13:57:23Z"}"#).unwrap();
        assert_eq!(stamped.expires, None);
        let both = read(r#"{"at":"2026-12-03T13:57:23Z","expires":"2026-12-03T13:58:23Z"}"#);
        assert_eq!(
            both.unwrap().expires,
            Some(stamped.at + chrono::Duration::minutes(1))
        );
        assert!(read(r#"{"at":"soon"}"#).is_err());
        assert!(read(r#"{"at":42}"#).is_err());
    }
}
