//! The `live_registry` projection: one row per registered Network Service and endpoint,
//! written in the same transaction as their events. The registry starts from it instead of
//! folding every refresh an endpoint ever made; [`rebuild`] and [`compare`] check it against
//! the log.

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::projection::{Mismatch, ReplayError, diff, settled};
use crate::store::{
    EventStore, Position, ProjectionChange, RegistrationRow, RegistrationRowData, StreamId,
    StreamKind,
};

use nsm_domain::registry::{EndpointEvent, ServiceEvent};
use nsm_domain::registry::{EndpointState, ServiceState};

/// A row of `live_registry`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    Service(ServiceState),
    Endpoint(EndpointState),
}

/// The change that keeps `live_registry` equal to a service's state.
pub fn service_change(state: &ServiceState) -> Result<ProjectionChange, StoreError> {
    if !state.registered {
        return Ok(ProjectionChange::RemoveRegistration);
    }
    Ok(ProjectionChange::UpsertRegistration(RegistrationRowData {
        expires_at: None,
        state: serde_json::to_string(state)?,
    }))
}

/// The change that keeps `live_registry` equal to an endpoint's state.
pub fn endpoint_change(state: &EndpointState) -> Result<ProjectionChange, StoreError> {
    if !state.is_registered() {
        return Ok(ProjectionChange::RemoveRegistration);
    }
    Ok(ProjectionChange::UpsertRegistration(RegistrationRowData {
        expires_at: Some(state.registration.expiration_time),
        state: serde_json::to_string(state)?,
    }))
}

/// The registration a row holds, by its stream's prefix.
pub fn decode_row(row: &RegistrationRow) -> Result<Registered, ReplayError> {
    let bad = |e: serde_json::Error| ReplayError::Row {
        stream: row.stream.clone(),
        message: e.to_string(),
    };
    if row.stream.kind() == StreamKind::Endpoint {
        return serde_json::from_str(&row.data.state)
            .map(Registered::Endpoint)
            .map_err(bad);
    }
    serde_json::from_str(&row.data.state)
        .map(Registered::Service)
        .map_err(bad)
}

/// Every registry stream folded from the log alone (a full read of the log).
#[derive(Debug, Default)]
pub struct FoldedRegistry {
    pub services: BTreeMap<StreamId, ServiceState>,
    pub endpoints: BTreeMap<StreamId, EndpointState>,
    /// The position of the last event read.
    pub head: Position,
}

pub async fn fold_registry(store: &dyn EventStore) -> Result<FoldedRegistry, ReplayError> {
    let mut folded = FoldedRegistry::default();
    loop {
        let chunk = store.read_all(folded.head, 8192).await?;
        let Some(last) = chunk.last() else { break };
        folded.head = last.position;
        for recorded in &chunk {
            let stream = &recorded.stream;
            match stream.kind() {
                StreamKind::Endpoint => {
                    let event = EndpointEvent::decode(recorded)?;
                    let state = folded.endpoints.remove(stream);
                    if let Some(next) = EndpointState::evolve(state, &event) {
                        folded.endpoints.insert(stream.clone(), next);
                    }
                }
                StreamKind::Service => {
                    let event = ServiceEvent::decode(recorded)?;
                    let state = folded.services.remove(stream);
                    if let Some(next) = ServiceState::evolve(state, &event) {
                        folded.services.insert(stream.clone(), next);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(folded)
}

/// The `live_registry` rows the log implies, by stream.
pub async fn rebuild(
    store: &dyn EventStore,
) -> Result<BTreeMap<StreamId, RegistrationRow>, ReplayError> {
    rows_of(&fold_registry(store).await?)
}

fn rows_of(folded: &FoldedRegistry) -> Result<BTreeMap<StreamId, RegistrationRow>, ReplayError> {
    let mut rows = BTreeMap::new();
    let services = folded
        .services
        .iter()
        .map(|(s, state)| (s, state.version, service_change(state)));
    let endpoints = folded
        .endpoints
        .iter()
        .map(|(s, state)| (s, state.version, endpoint_change(state)));
    for (stream, version, change) in services.chain(endpoints) {
        if let ProjectionChange::UpsertRegistration(data) = change? {
            let row = RegistrationRow {
                stream: stream.clone(),
                version,
                data,
            };
            rows.insert(stream.clone(), row);
        }
    }
    Ok(rows)
}

/// Compares the stored `live_registry` rows with a rebuild from the log.
pub async fn compare(
    store: &dyn EventStore,
) -> Result<Vec<Mismatch<RegistrationRow>>, ReplayError> {
    let folded = fold_registry(store).await?;
    let rebuilt = rows_of(&folded)?;
    let stored = store.registration_rows().await?;
    let mismatches = diff(
        stored,
        rebuilt,
        |row| &row.stream,
        |stored, expected| {
            stored.version == expected.version
                && stored.data.expires_at == expected.data.expires_at
                && decode_row(stored).ok() == decode_row(expected).ok()
        },
    );
    Ok(settled(store, folded.head, mismatches).await?)
}
