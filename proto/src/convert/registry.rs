//! `registry` wire types ↔ registry domain types.

use chrono::{DateTime, Utc};
use nsm_domain::quote::{QUOTED_CHARS, shorten};
use nsm_domain::registry::{
    Destination, EndpointName, EndpointSpec, EndpointState, EndpointUrl, Match, NetworkService,
    Payload,
};
use nsm_domain::vwire::ServiceName;

use super::{ConversionError, labels_from_wire, labels_to_wire, time_from_wire, time_to_wire};
use crate::registry as wire;

pub fn service_from_wire(
    service: &wire::NetworkService,
) -> Result<NetworkService, ConversionError> {
    let name = ServiceName::new(&service.name)
        .map_err(|e| ConversionError::invalid("network_service.name", e))?;
    let payload = Payload::parse(&service.payload)
        .map_err(|e| ConversionError::invalid("network_service.payload", e))?;
    let matches = service
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let field = format!("network_service.matches[{i}]");
            let routes = m
                .routes
                .iter()
                .enumerate()
                .map(|(j, d)| {
                    let selector = labels_from_wire(
                        &format!("{field}.routes[{j}].destination_selector"),
                        &d.destination_selector,
                    )?;
                    Ok(Destination {
                        destination_selector: selector,
                        weight: d.weight,
                    })
                })
                .collect::<Result<Vec<_>, ConversionError>>()?;
            let metadata = m
                .metadata
                .as_ref()
                .map(|md| md.labels.clone())
                .unwrap_or_default();
            Ok(Match {
                source_selector: labels_from_wire(
                    &format!("{field}.source_selector"),
                    &m.source_selector,
                )?,
                routes,
                fallthrough: m.fallthrough,
                metadata: labels_from_wire(&format!("{field}.metadata.labels"), &metadata)?,
            })
        })
        .collect::<Result<Vec<_>, ConversionError>>()?;
    Ok(NetworkService {
        name,
        payload,
        matches,
    })
}

pub fn service_to_wire(service: &NetworkService) -> wire::NetworkService {
    wire::NetworkService {
        name: service.name.to_string(),
        payload: service.payload.as_str().into(),
        matches: service
            .matches
            .iter()
            .map(|m| wire::Match {
                source_selector: labels_to_wire(&m.source_selector),
                routes: m
                    .routes
                    .iter()
                    .map(|d| wire::Destination {
                        destination_selector: labels_to_wire(&d.destination_selector),
                        weight: d.weight,
                    })
                    .collect(),
                fallthrough: m.fallthrough,
                metadata: (!m.metadata.is_empty()).then(|| wire::Metadata {
                    labels: labels_to_wire(&m.metadata),
                }),
            })
            .collect(),
        path_ids: vec![],
    }
}

/// What an endpoint asks to register, and the expiration time it asks for (if any).
pub fn endpoint_from_wire(
    endpoint: &wire::NetworkServiceEndpoint,
) -> Result<(EndpointSpec, Option<DateTime<Utc>>), ConversionError> {
    let field = "network_service_endpoint";
    let name = EndpointName::new(&endpoint.name)
        .map_err(|e| ConversionError::invalid(format!("{field}.name"), e))?;
    let url = EndpointUrl::new(&endpoint.url)
        .map_err(|e| ConversionError::invalid(format!("{field}.url"), e))?;
    let services = endpoint
        .network_service_names
        .iter()
        .map(|s| {
            ServiceName::new(s)
                .map_err(|e| ConversionError::invalid(format!("{field}.network_service_names"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let labels = endpoint
        .network_service_labels
        .iter()
        .map(|(service, labels)| {
            let key = shorten(service, QUOTED_CHARS);
            let field = format!("{field}.network_service_labels[{key}]");
            Ok((service.clone(), labels_from_wire(&field, &labels.labels)?))
        })
        .collect::<Result<_, ConversionError>>()?;
    let expiration = endpoint
        .expiration_time
        .as_ref()
        .map(|t| time_from_wire(&format!("{field}.expiration_time"), t))
        .transpose()?;
    let spec = EndpointSpec {
        name,
        url,
        services,
        labels,
    };
    spec.validate()
        .map_err(|e| ConversionError::invalid(field, e))?;
    Ok((spec, expiration))
}

pub fn endpoint_to_wire(endpoint: &EndpointState) -> wire::NetworkServiceEndpoint {
    let spec = &endpoint.spec;
    wire::NetworkServiceEndpoint {
        name: spec.name.to_string(),
        network_service_names: spec.services.iter().map(ToString::to_string).collect(),
        network_service_labels: spec
            .labels
            .iter()
            .map(|(service, labels)| {
                let labels = wire::NetworkServiceLabels {
                    labels: labels_to_wire(labels),
                };
                (service.clone(), labels)
            })
            .collect(),
        url: spec.url.to_string(),
        expiration_time: Some(time_to_wire(endpoint.registration.expiration_time)),
        initial_registration_time: Some(time_to_wire(
            endpoint.registration.initial_registration_time,
        )),
        path_ids: vec![],
    }
}
