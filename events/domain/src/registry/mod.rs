//! The registry: Network Services and Network Service Endpoints, event-sourced in the same
//! log as vWires, and the pure endpoint selection that turns a request into candidates.

mod event;
mod model;
pub mod select;
mod state;

pub use event::{
    EndpointEvent, EndpointExpired, EndpointRefreshed, EndpointRegistered, EndpointUnregistered,
    ServiceEvent, ServiceRegistered, ServiceUnregistered,
};
pub use model::{
    Destination, ENDPOINT_STREAM_PREFIX, EndpointName, EndpointSpec, EndpointUrl, MAX_LABEL_LEN,
    MAX_LABELS, MAX_NAME_LEN, Match, NetworkService, Payload, Registration, SERVICE_STREAM_PREFIX,
    service_stream, validate_labels,
};
pub use state::{
    EndpointState, EndpointStatus, ServiceState, expire_endpoint, register_endpoint,
    register_service, unregister_endpoint, unregister_service,
};
