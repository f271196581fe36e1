//! What the registry holds: Network Services (with their matches) and Network Service
//! Endpoints (with the services they serve, their labels, URL and expiry). Mirrors NSM's
//! `registry.NetworkService` and `registry.NetworkServiceEndpoint`, validated.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{MAX_STREAM_ID_LEN, StreamId};
use crate::vwire::{Labels, LifecycleError, ServiceName};

/// Prefix of Network Service streams: `ns-<name>`.
pub const SERVICE_STREAM_PREFIX: &str = crate::envelope::StreamKind::Service.prefix();
/// Prefix of Network Service Endpoint streams: `nse-<name>`.
pub const ENDPOINT_STREAM_PREFIX: &str = crate::envelope::StreamKind::Endpoint.prefix();

/// Longest Network Service or endpoint name: its registry stream id (`nse-` plus the name)
/// must fit the store's stream id, so the DNS limit of 253 is cut by the longest prefix.
pub const MAX_NAME_LEN: usize = MAX_STREAM_ID_LEN - ENDPOINT_STREAM_PREFIX.len();

/// Longest label key or value accepted (documented limit).
pub const MAX_LABEL_LEN: usize = 253;
/// Most labels on one request, endpoint service or selector (documented limit).
pub const MAX_LABELS: usize = 64;

fn invalid(message: String) -> LifecycleError {
    LifecycleError::Invalid(message)
}

use crate::quote::quote;

/// Checks label count and sizes against the documented limits.
pub fn validate_labels(what: &str, labels: &Labels) -> Result<(), LifecycleError> {
    if labels.len() > MAX_LABELS {
        return Err(invalid(format!(
            "{what}: {} labels, at most {MAX_LABELS}",
            labels.len()
        )));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > MAX_LABEL_LEN || value.len() > MAX_LABEL_LEN {
            return Err(invalid(format!(
                "{what}: label {} must have a key of 1-{MAX_LABEL_LEN} bytes and a value of at most {MAX_LABEL_LEN}",
                quote(key)
            )));
        }
    }
    Ok(())
}

/// What a Network Service carries: NSM's payload strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Payload {
    /// NSM's registries default to it (`setpayload`).
    #[default]
    Ethernet,
    Ip,
}

impl Payload {
    /// Parses NSM's payload string; empty means the default (ETHERNET).
    pub fn parse(text: &str) -> Result<Self, LifecycleError> {
        match text {
            "" | "ETHERNET" => Ok(Payload::Ethernet),
            "IP" => Ok(Payload::Ip),
            other => Err(invalid(format!(
                "payload {} is neither ETHERNET nor IP",
                quote(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Ethernet => "ETHERNET",
            Payload::Ip => "IP",
        }
    }
}

/// A route of a match: endpoints whose labels for the service contain the selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Values may be templates filled from the request labels (`{{.podName}}`).
    pub destination_selector: Labels,
    /// Relative share of requests among equal candidates (NSM ignores it; nsm-rs honours
    /// it). 0 means 1.
    pub weight: u32,
}

/// A rule of a Network Service: requests whose labels contain `source_selector` go to the
/// endpoints its routes select.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub source_selector: Labels,
    pub routes: Vec<Destination>,
    /// When no endpoint matches, try the next match instead of failing.
    pub fallthrough: bool,
    /// Labels that pick a forwarder (NSM's `Match.metadata.labels`).
    pub metadata: Labels,
}

/// A registered Network Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkService {
    pub name: ServiceName,
    pub payload: Payload,
    pub matches: Vec<Match>,
}

impl NetworkService {
    pub fn validate(&self) -> Result<(), LifecycleError> {
        for m in &self.matches {
            validate_labels("source selector", &m.source_selector)?;
            validate_labels("match metadata", &m.metadata)?;
            for route in &m.routes {
                validate_labels("destination selector", &route.destination_selector)?;
            }
        }
        Ok(())
    }

    pub fn stream(&self) -> StreamId {
        service_stream(&self.name)
    }
}

/// The stream of a Network Service.
pub fn service_stream(name: &ServiceName) -> StreamId {
    StreamId::new(format!("{SERVICE_STREAM_PREFIX}{name}"))
        .expect("a service name makes a valid stream id")
}

/// An endpoint's name: `name` or `name@domain`, the characters of a DNS label and `_ . @`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointName(String);

impl EndpointName {
    pub fn new(name: impl Into<String>) -> Result<Self, LifecycleError> {
        let name = name.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
            return Err(invalid(format!(
                "endpoint name {} must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9._@-]",
                quote(&name)
            )));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("{ENDPOINT_STREAM_PREFIX}{}", self.0))
            .expect("an endpoint name makes a valid stream id")
    }
}

impl TryFrom<String> for EndpointName {
    type Error = LifecycleError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<EndpointName> for String {
    fn from(value: EndpointName) -> Self {
        value.0
    }
}

impl fmt::Display for EndpointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an endpoint listens: `tcp://host:port`, `unix:///path` or `inode://dev/ino`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl(String);

impl EndpointUrl {
    pub fn new(url: impl Into<String>) -> Result<Self, LifecycleError> {
        let url = url.into();
        let bad = |why: &str| invalid(format!("endpoint URL {} {why}", quote(&url)));
        if url.len() > 2048 {
            return Err(bad("is longer than 2048 bytes"));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        match scheme {
            "unix" if rest.starts_with('/') && rest.len() > 1 => {}
            "unix" => return Err(bad("must be unix:///absolute/path")),
            "tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad("needs host:port"))?;
                let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
                if host.is_empty() || !port_ok || rest.contains('/') {
                    return Err(bad("must be tcp://host:port with a port in 1-65535"));
                }
            }
            "inode" => {
                let mut parts = rest.split('/');
                let numbers = parts
                    .by_ref()
                    .take(2)
                    .filter(|p| p.parse::<u64>().is_ok())
                    .count();
                if numbers != 2 || parts.next().is_some() {
                    return Err(bad("must be inode://<dev>/<ino>"));
                }
            }
            _ => return Err(bad("must use the tcp, unix or inode scheme")),
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndpointUrl {
    type Error = LifecycleError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<EndpointUrl> for String {
    fn from(value: EndpointUrl) -> Self {
        value.0
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an endpoint registers (its expiry lives in the registry's state, not here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub name: EndpointName,
    pub url: EndpointUrl,
    /// The services it serves (forwarders register `forwarder`).
    pub services: Vec<ServiceName>,
    /// Its labels, per service it serves.
    pub labels: BTreeMap<String, Labels>,
}

impl EndpointSpec {
    pub fn validate(&self) -> Result<(), LifecycleError> {
        if self.services.is_empty() {
            return Err(invalid(format!(
                "endpoint {} serves no network service",
                self.name
            )));
        }
        for (service, labels) in &self.labels {
            let service = crate::quote::shorten(service, crate::quote::QUOTED_CHARS);
            validate_labels(&format!("labels of {service}"), labels)?;
        }
        Ok(())
    }

    /// The endpoint's labels for `service` (empty if it has none).
    pub fn labels_for(&self, service: &ServiceName) -> Labels {
        self.labels
            .get(service.as_str())
            .cloned()
            .unwrap_or_default()
    }
}

/// A registered endpoint's deadline and first registration, as the registry keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub initial_registration_time: DateTime<Utc>,
    pub expiration_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_accepted_names_make_valid_streams_and_one_more_is_refused() {
        let longest = "n".repeat(MAX_NAME_LEN);
        let service = ServiceName::new(longest.clone()).unwrap();
        let endpoint = EndpointName::new(longest.clone()).unwrap();
        assert_eq!(service_stream(&service).as_str().len(), MAX_NAME_LEN + 3);
        assert_eq!(endpoint.stream().as_str().len(), MAX_STREAM_ID_LEN);
        let too_long = format!("{longest}n");
        let refused = ServiceName::new(too_long.clone()).unwrap_err().to_string();
        assert!(refused.contains("must be 1-251 characters"), "{refused}");
        assert!(EndpointName::new(too_long).is_err());
    }

    #[test]
    fn refusals_of_huge_input_quote_only_its_beginning() {
        let huge = "a".repeat(100_000);
        let labels: Labels = [(huge.clone(), "v".to_owned())].into();
        let spec = EndpointSpec {
            name: EndpointName::new("nse-1").unwrap(),
            url: EndpointUrl::new("tcp://127.0.0.1:5001").unwrap(),
            services: vec![ServiceName::new("icmp").unwrap()],
            labels: [(huge.clone(), labels.clone())].into(),
        };
        let refusals = [
            EndpointName::new(huge.clone()).unwrap_err(),
            EndpointUrl::new(huge.clone()).unwrap_err(),
            EndpointUrl::new(format!("tcp://{huge}")).unwrap_err(),
            Payload::parse(&huge).unwrap_err(),
            validate_labels("selector", &labels).unwrap_err(),
            spec.validate().unwrap_err(),
        ];
        for refusal in refusals {
            let message = refusal.to_string();
            assert!(message.len() < 400, "{message}");
            assert!(
                message.contains("…") && message.contains(" bytes)"),
                "{message}"
            );
        }
    }
}
