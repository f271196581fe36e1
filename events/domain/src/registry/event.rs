//! Registry events: Network Services (stream `ns-<name>`) and Network Service Endpoints
//! (stream `nse-<name>`) are event-sourced in the same log as vWires, so registrations
//! survive restarts and an operator sees when each endpoint came, refreshed, left or expired.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{EndpointSpec, NetworkService};
use crate::envelope::{Causation, NewEvent, RecordedEvent};
use crate::error::EnvelopeError;
use crate::upcast::{self, DecodeError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRegistered {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub service: NetworkService,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUnregistered {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
}

/// A Network Service's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceEvent {
    Registered(ServiceRegistered),
    Unregistered(ServiceUnregistered),
}

/// An endpoint registered, or re-registered with different content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRegistered {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub endpoint: EndpointSpec,
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub expires_at: DateTime<Utc>,
}

/// An endpoint re-registered unchanged: only its deadline moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRefreshed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointUnregistered {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
}

/// The endpoint was not refreshed before its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointExpired {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub deadline: DateTime<Utc>,
}

/// A Network Service Endpoint's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    Registered(EndpointRegistered),
    Refreshed(EndpointRefreshed),
    Unregistered(EndpointUnregistered),
    Expired(EndpointExpired),
}

fn new_event<T: Serialize>(
    event_type: &str,
    body: &T,
    causation: Causation,
) -> Result<NewEvent, EnvelopeError> {
    let version = upcast::current_version(event_type).unwrap_or(1);
    NewEvent::new(event_type, version, body, causation)
}

fn not_ours<T>(kind: &str, event_type: &str) -> Result<T, serde_json::Error> {
    Err(serde::de::Error::custom(format!(
        "{event_type} is not a {kind} event"
    )))
}

impl ServiceEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            ServiceEvent::Registered(_) => "ServiceRegistered",
            ServiceEvent::Unregistered(_) => "ServiceUnregistered",
        }
    }

    pub fn to_new_event(&self, causation: Causation) -> Result<NewEvent, EnvelopeError> {
        match self {
            ServiceEvent::Registered(e) => new_event(self.event_type(), e, causation),
            ServiceEvent::Unregistered(e) => new_event(self.event_type(), e, causation),
        }
    }

    pub fn decode(recorded: &RecordedEvent) -> Result<Self, DecodeError> {
        upcast::read_current(recorded.into(), |event_type, json| match event_type {
            "ServiceRegistered" => Ok(ServiceEvent::Registered(serde_json::from_str(json)?)),
            "ServiceUnregistered" => Ok(ServiceEvent::Unregistered(serde_json::from_str(json)?)),
            other => not_ours("network service", other),
        })
    }
}

impl EndpointEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            EndpointEvent::Registered(_) => "EndpointRegistered",
            EndpointEvent::Refreshed(_) => "EndpointRefreshed",
            EndpointEvent::Unregistered(_) => "EndpointUnregistered",
            EndpointEvent::Expired(_) => "EndpointExpired",
        }
    }

    pub fn to_new_event(&self, causation: Causation) -> Result<NewEvent, EnvelopeError> {
        match self {
            EndpointEvent::Registered(e) => new_event(self.event_type(), e, causation),
            EndpointEvent::Refreshed(e) => new_event(self.event_type(), e, causation),
            EndpointEvent::Unregistered(e) => new_event(self.event_type(), e, causation),
            EndpointEvent::Expired(e) => new_event(self.event_type(), e, causation),
        }
    }

    pub fn decode(recorded: &RecordedEvent) -> Result<Self, DecodeError> {
        upcast::read_current(recorded.into(), |event_type, json| match event_type {
            "EndpointRegistered" => Ok(EndpointEvent::Registered(serde_json::from_str(json)?)),
            "EndpointRefreshed" => Ok(EndpointEvent::Refreshed(serde_json::from_str(json)?)),
            "EndpointUnregistered" => Ok(EndpointEvent::Unregistered(serde_json::from_str(json)?)),
            "EndpointExpired" => Ok(EndpointEvent::Expired(serde_json::from_str(json)?)),
            other => not_ours("network service endpoint", other),
        })
    }
}
