//! Registry state as folds over registry events, and the pure decisions that produce them.
//!
//! Registrations are idempotent the way NSM clients need: registering the same service again
//! records nothing; re-registering an endpoint unchanged records only `EndpointRefreshed`
//! (its deadline moved); unregistering what is not registered records nothing.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::event::{
    EndpointEvent, EndpointExpired, EndpointRefreshed, EndpointRegistered, EndpointUnregistered,
    ServiceEvent, ServiceRegistered, ServiceUnregistered,
};
use super::model::{EndpointSpec, NetworkService, Registration};
use crate::vwire::{LifecycleError, MAX_LIFETIME};

/// A Network Service as folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub service: NetworkService,
    pub version: u64,
    pub registered: bool,
    pub changed_at: DateTime<Utc>,
}

impl ServiceState {
    pub fn evolve(state: Option<ServiceState>, event: &ServiceEvent) -> Option<ServiceState> {
        match (state, event) {
            (state, ServiceEvent::Registered(e)) => Some(ServiceState {
                service: e.service.clone(),
                version: state.map_or(1, |s| s.version + 1),
                registered: true,
                changed_at: e.at,
            }),
            (Some(mut state), ServiceEvent::Unregistered(e)) => {
                state.version += 1;
                state.registered = false;
                state.changed_at = e.at;
                Some(state)
            }
            // An unregistration with nothing before it: a damaged log; nothing to fold into.
            (None, ServiceEvent::Unregistered(_)) => None,
        }
    }
}

/// Where an endpoint's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Registered,
    Unregistered,
    Expired,
}

/// A Network Service Endpoint as folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub spec: EndpointSpec,
    pub version: u64,
    pub status: EndpointStatus,
    pub registration: Registration,
    pub changed_at: DateTime<Utc>,
}

impl EndpointState {
    pub fn is_registered(&self) -> bool {
        self.status == EndpointStatus::Registered
    }

    pub fn evolve(state: Option<EndpointState>, event: &EndpointEvent) -> Option<EndpointState> {
        match (state, event) {
            (state, EndpointEvent::Registered(e)) => {
                // A registration after an unregistration or expiry is a new first registration.
                let initial = state
                    .as_ref()
                    .filter(|s| s.is_registered())
                    .map_or(e.at, |s| s.registration.initial_registration_time);
                Some(EndpointState {
                    spec: e.endpoint.clone(),
                    version: state.map_or(1, |s| s.version + 1),
                    status: EndpointStatus::Registered,
                    registration: Registration {
                        initial_registration_time: initial,
                        expiration_time: e.expires_at,
                    },
                    changed_at: e.at,
                })
            }
            (None, _) => None,
            (Some(mut state), event) => {
                state.version += 1;
                match event {
                    EndpointEvent::Refreshed(e) => {
                        state.registration.expiration_time = e.expires_at;
                        state.changed_at = e.at;
                    }
                    EndpointEvent::Unregistered(e) => {
                        state.status = EndpointStatus::Unregistered;
                        state.changed_at = e.at;
                    }
                    EndpointEvent::Expired(e) => {
                        state.status = EndpointStatus::Expired;
                        state.changed_at = e.at;
                    }
                    EndpointEvent::Registered(_) => {}
                }
                Some(state)
            }
        }
    }
}

/// Registers (or re-registers) a Network Service.
pub fn register_service(
    state: Option<&ServiceState>,
    service: &NetworkService,
    now: DateTime<Utc>,
) -> Result<Vec<ServiceEvent>, LifecycleError> {
    service.validate()?;
    if state.is_some_and(|s| s.registered && s.service == *service) {
        return Ok(vec![]);
    }
    Ok(vec![ServiceEvent::Registered(ServiceRegistered {
        at: now.trunc_subsecs(6),
        service: service.clone(),
    })])
}

/// Unregisters a Network Service; nothing to do if it is not registered.
pub fn unregister_service(state: Option<&ServiceState>, now: DateTime<Utc>) -> Vec<ServiceEvent> {
    match state {
        Some(s) if s.registered => vec![ServiceEvent::Unregistered(ServiceUnregistered {
            at: now.trunc_subsecs(6),
        })],
        _ => vec![],
    }
}

/// Registers or refreshes an endpoint. Its deadline is `requested` if given (it must be in
/// the future and within [`MAX_LIFETIME`]), else `now + default_lifetime`.
pub fn register_endpoint(
    state: Option<&EndpointState>,
    spec: &EndpointSpec,
    requested: Option<DateTime<Utc>>,
    default_lifetime: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<EndpointEvent>, LifecycleError> {
    spec.validate()?;
    let now = now.trunc_subsecs(6);
    let expires_at = requested.unwrap_or(now + default_lifetime).trunc_subsecs(6);
    let longest = Duration::from_std(MAX_LIFETIME).unwrap_or(Duration::MAX);
    if expires_at <= now || expires_at > now + longest {
        return Err(LifecycleError::BadDeadline { expires_at, now });
    }
    let event = match state {
        Some(s) if s.is_registered() && s.spec == *spec => {
            if s.registration.expiration_time == expires_at {
                return Ok(vec![]);
            }
            EndpointEvent::Refreshed(EndpointRefreshed {
                at: now,
                expires_at,
            })
        }
        _ => EndpointEvent::Registered(EndpointRegistered {
            at: now,
            endpoint: spec.clone(),
            expires_at,
        }),
    };
    Ok(vec![event])
}

/// Unregisters an endpoint; nothing to do if it is not registered.
pub fn unregister_endpoint(
    state: Option<&EndpointState>,
    now: DateTime<Utc>,
) -> Vec<EndpointEvent> {
    match state {
        Some(s) if s.is_registered() => vec![EndpointEvent::Unregistered(EndpointUnregistered {
            at: now.trunc_subsecs(6),
        })],
        _ => vec![],
    }
}

/// Expires an endpoint whose deadline has passed; nothing to do otherwise (a refresh won).
pub fn expire_endpoint(state: Option<&EndpointState>, now: DateTime<Utc>) -> Vec<EndpointEvent> {
    match state {
        Some(s) if s.is_registered() && now >= s.registration.expiration_time => {
            vec![EndpointEvent::Expired(EndpointExpired {
                at: now.trunc_subsecs(6),
                deadline: s.registration.expiration_time,
            })]
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::registry::{EndpointName, EndpointUrl, Payload};
    use crate::vwire::ServiceName;

    fn t(minutes: i64) -> DateTime<Utc> {
        let origin = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap();
        origin.with_timezone(&Utc) + Duration::minutes(minutes)
    }

    fn spec(url: &str) -> EndpointSpec {
        EndpointSpec {
            name: EndpointName::new("nse-1").unwrap(),
            url: EndpointUrl::new(url).unwrap(),
            services: vec![ServiceName::new("web").unwrap()],
            labels: BTreeMap::new(),
        }
    }

    fn fold(events: &[EndpointEvent]) -> Option<EndpointState> {
        events.iter().fold(None, EndpointState::evolve)
    }

    #[test]
    fn registering_the_same_service_twice_records_nothing_new() {
        let ns = NetworkService {
            name: ServiceName::new("web").unwrap(),
            payload: Payload::Ip,
            matches: vec![],
        };
        let first = register_service(None, &ns, t(0)).unwrap();
        let state = first.iter().fold(None, ServiceState::evolve).unwrap();
        assert!(
            register_service(Some(&state), &ns, t(1))
                .unwrap()
                .is_empty()
        );
        let changed = NetworkService {
            payload: Payload::Ethernet,
            ..ns
        };
        assert_eq!(
            register_service(Some(&state), &changed, t(1))
                .unwrap()
                .len(),
            1
        );
        let gone = unregister_service(Some(&state), t(2));
        let state = gone.iter().fold(Some(state), ServiceState::evolve).unwrap();
        assert!(!state.registered);
        assert!(
            unregister_service(Some(&state), t(3)).is_empty(),
            "idempotent"
        );
    }

    #[test]
    fn an_endpoint_registers_refreshes_expires_and_comes_back() {
        let minute = Duration::minutes(1);
        let mut log =
            register_endpoint(None, &spec("tcp://10.0.0.1:5001"), None, minute, t(0)).unwrap();
        let state = fold(&log).unwrap();
        assert_eq!(state.registration.expiration_time, t(1));
        // Same content 40 s later: only the deadline moves.
        let later = t(0) + Duration::seconds(40);
        let refresh = register_endpoint(
            Some(&state),
            &spec("tcp://10.0.0.1:5001"),
            None,
            minute,
            later,
        )
        .unwrap();
        assert!(matches!(refresh[..], [EndpointEvent::Refreshed(_)]));
        log.extend(refresh);
        let state = fold(&log).unwrap();
        assert_eq!(state.registration.expiration_time, later + minute);
        assert_eq!(state.registration.initial_registration_time, t(0));
        // Not due yet, then due.
        assert!(expire_endpoint(Some(&state), t(1)).is_empty());
        let expired = expire_endpoint(Some(&state), later + minute);
        assert!(matches!(expired[..], [EndpointEvent::Expired(_)]));
        log.extend(expired);
        let state = fold(&log).unwrap();
        assert_eq!(state.status, EndpointStatus::Expired);
        assert!(unregister_endpoint(Some(&state), t(5)).is_empty());
        // Registering again is a new first registration, at a new URL.
        let back = register_endpoint(
            Some(&state),
            &spec("unix:///run/nse.sock"),
            Some(t(15)),
            minute,
            t(10),
        )
        .unwrap();
        assert!(matches!(back[..], [EndpointEvent::Registered(_)]));
        log.extend(back);
        let state = fold(&log).unwrap();
        assert_eq!(state.registration.initial_registration_time, t(10));
        assert_eq!(state.registration.expiration_time, t(15));
        assert_eq!(state.version, 4);
    }

    #[test]
    fn malformed_registrations_are_refused() {
        let minute = Duration::minutes(1);
        let past = register_endpoint(None, &spec("tcp://h:1"), Some(t(-1)), minute, t(0));
        assert!(matches!(past, Err(LifecycleError::BadDeadline { .. })));
        let mut lonely = spec("tcp://h:1");
        lonely.services.clear();
        assert!(matches!(
            register_endpoint(None, &lonely, None, minute, t(0)),
            Err(LifecycleError::Invalid(_))
        ));
        for url in [
            "",
            "http://x",
            "tcp://host",
            "tcp://:5",
            "tcp://h:0",
            "unix://relative",
            "inode://1/x",
        ] {
            assert!(EndpointUrl::new(url).is_err(), "{url:?} should be refused");
        }
        for url in [
            "tcp://127.0.0.1:5001",
            "tcp://[::1]:5001",
            "unix:///run/nsm.sock",
            "inode://3/4567",
        ] {
            assert!(EndpointUrl::new(url).is_ok(), "{url:?} should be accepted");
        }
        assert!(EndpointName::new("").is_err());
        assert!(EndpointName::new("a b").is_err());
    }
}
