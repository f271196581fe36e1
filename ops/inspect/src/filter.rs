//! Which events a command looks at: by vWire, by what the vWire is (service, client,
//! endpoint), by kind, by time, by position and by trace id. Shared by `nsm events` and
//! `nsm timeline`.
//!
//! Times become positions first (`recorded_at` never decreases along position), so a time
//! window is a position range. Service, client and endpoint are properties of a vWire, not of
//! each event: they are learnt from its `Requested` and `Established` events, and then every
//! event of a matching vWire is shown.

use std::collections::HashSet;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use nsm_domain::envelope::StreamKind;
use nsm_domain::upcast::SCHEMAS;
use nsm_domain::vwire::{VWIRE_STREAM_PREFIX, VWireEvent};
use nsm_log::store::{Position, RecordedEvent, StreamId};

use super::progress::Progress;
use super::scan::scan;
use nsm_log::read::LogReader;

#[derive(Debug, Clone, Default, Args)]
pub(crate) struct FilterArgs {
    /// Only this vWire (its id, or the first characters of it, as tables show them).
    #[arg(long)]
    pub(crate) vwire: Option<String>,
    /// Only vWires of this Network Service.
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// Only vWires of this client (its SPIFFE id).
    #[arg(long)]
    pub(crate) client: Option<String>,
    /// Only vWires connected to this endpoint (its name).
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// Only events of this kind (e.g. Expired; repeat or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub(crate) kind: Vec<String>,
    /// Only events recorded at or after this time: RFC 3339, or a duration ago such as 15m.
    #[arg(long, value_parser = parse_moment)]
    pub(crate) since: Option<DateTime<Utc>>,
    /// Only events recorded at or before this time: RFC 3339, or a duration ago such as 5m.
    #[arg(long, value_parser = parse_moment)]
    pub(crate) until: Option<DateTime<Utc>>,
    /// Only events after this position of the log.
    #[arg(long)]
    pub(crate) from_position: Option<u64>,
    /// Only events caused by the call with this trace id (W3C, 32 hex digits).
    #[arg(long)]
    pub(crate) trace_id: Option<String>,
}

/// `2026-12-02T10:00:00Z` (any RFC 3339 offset), or a duration before now (`90s`, `15m`,
/// `2h`, `1d`, `1h 30m`).
pub(crate) fn parse_moment(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => chrono::Duration::from_std(ago)
            .ok()
            .and_then(|ago| Utc::now().checked_sub_signed(ago))
            .ok_or_else(|| format!("{text:?} is too long ago")),
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 time (2026-12-02T10:00:00Z) nor a duration ago (15m)"
        )),
    }
}

/// A filter resolved against one log: the position range, and the streams it selects.
#[derive(Debug)]
pub(crate) struct Selection {
    pub(crate) after: Position,
    pub(crate) until: Position,
    /// `None`: every stream.
    pub(crate) streams: Option<HashSet<StreamId>>,
    kinds: Vec<String>,
    trace_id: Option<String>,
}

impl Selection {
    pub(crate) fn matches(&self, event: &RecordedEvent) -> bool {
        event.position > self.after
            && event.position <= self.until
            && self
                .streams
                .as_ref()
                .is_none_or(|s| s.contains(&event.stream))
            && (self.kinds.is_empty()
                || self
                    .kinds
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&event.event_type)))
            && self
                .trace_id
                .as_ref()
                .is_none_or(|t| event.correlation_id.as_deref() == Some(t))
    }

    /// The one stream selected, when the filter named a vWire (read by its index).
    pub(crate) fn single_stream(&self) -> Option<&StreamId> {
        self.streams
            .as_ref()
            .filter(|s| s.len() == 1)?
            .iter()
            .next()
    }

    pub(crate) fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }
}

impl FilterArgs {
    /// Resolves the filter against `log` up to `head`.
    pub(crate) fn select(&self, log: &LogReader, head: Position) -> anyhow::Result<Selection> {
        if let Some(trace) = &self.trace_id {
            let valid = trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit());
            if !valid {
                bail!("--trace-id {trace:?} is not a trace id (32 hex digits)");
            }
        }
        for kind in &self.kind {
            let mut known = SCHEMAS.iter().map(|&(kind, _)| kind);
            if !known.any(|k| k.eq_ignore_ascii_case(kind)) {
                let all: Vec<_> = SCHEMAS.iter().map(|&(kind, _)| kind).collect();
                bail!(
                    "--kind {kind:?} is not an event kind; known kinds: {}",
                    all.join(", ")
                );
            }
        }
        let mut after = Position(self.from_position.unwrap_or(0));
        if let Some(since) = self.since {
            // Everything recorded before `since` is at or before position_at(since - 1 µs).
            let before = since - chrono::Duration::microseconds(1);
            after = after.max(log.position_at(before)?);
        }
        let until = match self.until {
            Some(until) => log.position_at(until)?.min(head),
            None => head,
        };
        let mut streams: Option<HashSet<StreamId>> = None;
        if let Some(vwire) = &self.vwire {
            streams = Some(HashSet::from([resolve_vwire(log, vwire)?]));
        }
        if self.service.is_some() || self.client.is_some() || self.endpoint.is_some() {
            let matching = self.streams_matching(log, head)?;
            streams = Some(match streams {
                Some(named) => named.intersection(&matching).cloned().collect(),
                None => matching,
            });
        }
        Ok(Selection {
            after,
            until,
            streams,
            kinds: self.kind.clone(),
            trace_id: self.trace_id.clone(),
        })
    }

    /// The vWire streams whose service, client and endpoint match, from their `Requested`
    /// and `Established` events anywhere in the log (a vWire requested before the window
    /// still belongs to its service).
    fn streams_matching(
        &self,
        log: &LogReader,
        head: Position,
    ) -> anyhow::Result<HashSet<StreamId>> {
        #[derive(Default)]
        struct Seen {
            requested: bool,
            established: bool,
        }
        let progress = Progress::new(head.0, "events");
        let mut seen: std::collections::HashMap<StreamId, Seen> = Default::default();
        let decode = |event: RecordedEvent| -> Option<(StreamId, VWireEvent)> {
            let wanted = matches!(event.event_type.as_str(), "Requested" | "Established");
            if !wanted || event.stream.kind() != StreamKind::VWire {
                return None;
            }
            let decoded = VWireEvent::decode(&event).ok()?;
            Some((event.stream, decoded))
        };
        scan(log, Position::START, head, &progress, decode, |decoded| {
            let Some((stream, event)) = decoded else {
                return Ok(());
            };
            let entry = seen.entry(stream).or_default();
            match event {
                VWireEvent::Requested(r) => {
                    entry.requested = self
                        .service
                        .as_deref()
                        .is_none_or(|s| r.service.as_str() == s)
                        && self
                            .client
                            .as_deref()
                            .is_none_or(|c| r.client.as_str() == c);
                }
                VWireEvent::Established(e) => {
                    entry.established = self
                        .endpoint
                        .as_deref()
                        .is_none_or(|n| e.endpoint.name == n);
                }
                _ => {}
            }
            Ok(())
        })?;
        let need_endpoint = self.endpoint.is_some();
        Ok(seen
            .into_iter()
            .filter(|(_, s)| s.requested && (s.established || !need_endpoint))
            .map(|(stream, _)| stream)
            .collect())
    }
}

/// The stream of the vWire `given` names: a whole id, a `vwire-` stream id, or a prefix of
/// the id that only one vWire has.
pub(crate) fn resolve_vwire(log: &LogReader, given: &str) -> anyhow::Result<StreamId> {
    let id = given
        .strip_prefix(VWIRE_STREAM_PREFIX)
        .unwrap_or(given)
        .to_ascii_lowercase();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!("{given:?} is not a vWire id (a UUID, or its first characters)");
    }
    let prefix = format!("{VWIRE_STREAM_PREFIX}{id}");
    let found = log.streams_with_prefix(&prefix, 2)?;
    match found.as_slice() {
        [one] => StreamId::new(one.clone()).context("a stream id in the log is invalid"),
        [] => bail!("no vWire {given} in {}", log.path().display()),
        _ => bail!("{given:?} names more than one vWire; give more of its id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_rfc3339_or_a_duration_ago() {
        let at = parse_moment("2026-12-02T10:00:00+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-02T09:00:00+00:00");
        let ago = parse_moment("15m").unwrap();
        let expected = Utc::now() - chrono::Duration::minutes(15);
        assert!((ago - expected).num_seconds().abs() < 5);
        let error = parse_moment("yesterday-ish").unwrap_err();
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
