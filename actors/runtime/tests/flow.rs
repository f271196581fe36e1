//! The vWire's flows against a scripted mesh, on a paused clock: the next candidate is tried
//! when an endpoint fails, every failure is recorded whole, refusals found before `Requested`
//! record nothing, expiry and Close tell the endpoint and unplumb, a vWire left
//! `Requested` by a flow that died with the node is failed at start-up, a dead datapath is
//! re-plumbed with backoff, and reconcile heals what is broken and sweeps only orphans.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_dataplane::{Dataplane, DataplaneError, DataplaneObject, DryRun, Liveness, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{
    ClosedBy, DataplaneWork, Mechanism, MechanismClass, Plumbing, ServiceName, Status, VWireEvent,
    VWireId,
};
use nsm_log::store::{Causation, EventStore, MemoryStore};
use nsm_runtime::{ActorError, LivenessConfig};
use support::mesh::{connect, mesh, mesh_probing};
use support::{Node, events_in as events, origin, request, run_paused};

/// A data plane whose plumbing always fails.
#[derive(Debug)]
struct BrokenDataplane;

impl Dataplane for BrokenDataplane {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn local_mechanisms(&self) -> &'static [&'static str] {
        &["KERNEL"]
    }
    fn plumb(&self, _: PlumbRequest) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        Box::pin(async {
            Err(DataplaneError::Failed {
                dataplane: "broken",
                reason: "no such netns".into(),
            })
        })
    }
    fn unplumb(
        &self,
        _: VWireId,
        _: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        Box::pin(async { unreachable!("nothing was plumbed") })
    }
}

/// A data plane that does what the test says: every probe finds the datapath dead, `verify`
/// reports the problems set for a vWire, `inventory` returns what the test put there.
#[derive(Debug, Default)]
struct ScriptedDataplane {
    plumbed: Mutex<Vec<VWireId>>,
    problems: Mutex<BTreeMap<VWireId, Vec<String>>>,
    objects: Mutex<Vec<DataplaneObject>>,
    removed: Mutex<Vec<DataplaneObject>>,
}

impl ScriptedDataplane {
    fn work(operation: &str) -> DataplaneWork {
        DataplaneWork {
            dataplane: "scripted".into(),
            dry_run: false,
            operations: vec![operation.into()],
        }
    }

    fn object(vwire: Option<VWireId>, what: &str) -> DataplaneObject {
        DataplaneObject {
            vwire,
            description: what.into(),
            locator: what.into(),
        }
    }
}

impl Dataplane for ScriptedDataplane {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn local_mechanisms(&self) -> &'static [&'static str] {
        &["KERNEL"]
    }
    fn plumb(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        self.plumbed.lock().unwrap().push(request.vwire);
        Box::pin(async { Ok(Self::work("made it")) })
    }
    fn unplumb(
        &self,
        _: VWireId,
        _: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        Box::pin(async { Ok(Self::work("removed it")) })
    }
    fn verify(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<Vec<String>, DataplaneError>> {
        let problems = self
            .problems
            .lock()
            .unwrap()
            .get(&request.vwire)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(problems) })
    }
    fn inventory(&self) -> BoxFuture<'static, Result<Vec<DataplaneObject>, DataplaneError>> {
        let objects = self.objects.lock().unwrap().clone();
        Box::pin(async move { Ok(objects) })
    }
    fn remove(
        &self,
        objects: Vec<DataplaneObject>,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        self.removed.lock().unwrap().extend(objects);
        Box::pin(async { Ok(Self::work("removed orphans")) })
    }
    fn probe(
        &self,
        _: PlumbRequest,
        _: Duration,
    ) -> BoxFuture<'static, Result<Liveness, DataplaneError>> {
        Box::pin(async {
            Ok(Liveness::Dead {
                what: "ICMP 10.0.0.1 → 10.0.0.2 on nsm-1".into(),
                reason: "no reply".into(),
            })
        })
    }
}

#[test]
fn a_failing_endpoint_is_skipped_for_the_next_candidate() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 2, Arc::new(DryRun)).await;
        mesh.hop
            .down
            .lock()
            .unwrap()
            .insert("unix:///run/nse-1.sock".into());
        let id = VWireId::new_random();
        let vwire = mesh.request(id).await.unwrap();
        assert_eq!(vwire.status, Status::Established);
        assert_eq!(vwire.connection.unwrap().endpoint.name, "nse-2");
        assert_eq!(vwire.path.segments.len(), 3, "client, node, endpoint");
        assert!(vwire.plumbing.unwrap().dry_run);
        assert_eq!(
            events(&mesh.store, id).await,
            ["Requested", "DataplanePlumbed", "Established"]
        );
    });
}

/// The service's payload (IP here) goes to the endpoint with the Request (NSM's `discover`
/// sets it), to the data plane with the plumbing, into the log with `Established`, and back
/// out of the fold for reconcile's re-plumbing.
#[test]
fn the_services_payload_is_forwarded_plumbed_recorded_and_folded() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(DryRun)).await;
        let id = VWireId::new_random();
        let vwire = mesh.request(id).await.unwrap();
        assert_eq!(*mesh.hop.payloads.lock().unwrap(), [Some(Payload::Ip)]);
        assert_eq!(vwire.connection.as_ref().unwrap().payload, Payload::Ip);
        let recorded = mesh.store.read_stream(&id.stream(), 1).await.unwrap();
        let decoded: Vec<VWireEvent> = recorded
            .iter()
            .map(|e| VWireEvent::decode(e).unwrap())
            .collect();
        let Some(VWireEvent::DataplanePlumbed(plumbed)) = decoded.get(1) else {
            panic!("{decoded:?}");
        };
        assert!(
            plumbed
                .work
                .operations
                .iter()
                .any(|o| o.contains("would carry IP")),
            "{:?}",
            plumbed.work.operations
        );
        let Some(VWireEvent::Established(established)) = decoded.get(2) else {
            panic!("{decoded:?}");
        };
        assert_eq!(established.payload, Payload::Ip);
        let replumb = PlumbRequest::for_vwire(&vwire).expect("plumbed");
        assert_eq!(replumb.payload, Payload::Ip);
    });
}

#[test]
fn when_every_endpoint_fails_the_vwire_is_recorded_failed_with_each_reason() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 2, Arc::new(DryRun)).await;
        for n in 1..=2 {
            let url = format!("unix:///run/nse-{n}.sock");
            mesh.hop.down.lock().unwrap().insert(url);
        }
        let id = VWireId::new_random();
        let refused = mesh.request(id).await.unwrap_err();
        let ActorError::EndpointsFailed { failures, .. } = &refused else {
            panic!("{refused}");
        };
        assert_eq!(failures.len(), 2, "{refused}");
        assert!(refused.to_string().contains("nse-1") && refused.to_string().contains("nse-2"));
        assert_eq!(events(&mesh.store, id).await, ["Requested", "Failed"]);
    });
}

#[test]
fn refusals_found_before_the_request_is_recorded_record_nothing() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(DryRun)).await;
        let id = VWireId::new_random();
        let mut vxlan = connect(id, support::MINUTE);
        vxlan.request.mechanism_preferences = vec![Mechanism::new(MechanismClass::Remote, "VXLAN")];
        let refused = mesh
            .manager
            .connect(id, vxlan, Causation::default())
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            ActorError::Dataplane(DataplaneError::Unsupported { .. })
        ));
        assert!(refused.to_string().contains("LOCAL/KERNEL"), "{refused}");

        let mut unknown = connect(id, support::MINUTE);
        unknown.request.service = ServiceName::new("nope").unwrap();
        let refused = mesh
            .manager
            .connect(id, unknown, Causation::default())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ActorError::UnknownService(_)),
            "{refused}"
        );
        assert!(events(&mesh.store, id).await.is_empty());
    });
}

#[test]
fn a_dataplane_failure_fails_the_vwire_and_tells_the_endpoint_to_close() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(BrokenDataplane)).await;
        let id = VWireId::new_random();
        let refused = mesh.request(id).await.unwrap_err();
        assert!(refused.to_string().contains("no such netns"), "{refused}");
        assert_eq!(events(&mesh.store, id).await, ["Requested", "Failed"]);
        let closes = mesh.hop.closes.lock().unwrap().clone();
        assert_eq!(
            closes,
            [("unix:///run/nse-1.sock".to_owned(), id.to_string())]
        );
    });
}

#[test]
fn expiry_and_close_tell_the_endpoint_and_record_the_unplumbing() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(DryRun)).await;
        let expiring = VWireId::new_random();
        let closing = VWireId::new_random();
        for id in [expiring, closing] {
            mesh.request(id).await.unwrap();
        }
        mesh.manager
            .close(
                closing,
                ClosedBy::Client,
                "done".into(),
                Causation::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(support::MINUTE + Duration::from_secs(1)).await;
        for id in [expiring, closing] {
            let told = mesh
                .hop
                .closes
                .lock()
                .unwrap()
                .iter()
                .any(|(_, c)| *c == id.to_string());
            assert!(told, "{id} was not closed at its endpoint");
        }
        assert_eq!(
            events(&mesh.store, expiring).await,
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "DataplaneUnplumbed",
                "Expired"
            ]
        );
        assert_eq!(
            events(&mesh.store, closing).await,
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "DataplaneUnplumbed",
                "Closed"
            ]
        );
    });
}

#[test]
fn a_refresh_is_forwarded_to_the_same_endpoint_and_moves_the_deadline() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 2, Arc::new(DryRun)).await;
        let id = VWireId::new_random();
        let first = mesh.request(id).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let mut again = connect(id, support::MINUTE);
        again.request.path = first.path.clone();
        let refreshed = mesh
            .manager
            .connect(id, again, Causation::default())
            .await
            .unwrap();
        assert!(refreshed.expires_at > first.expires_at);
        assert_eq!(
            refreshed.connection.unwrap().endpoint,
            first.connection.unwrap().endpoint
        );
        let requests = mesh.hop.requests.lock().unwrap().clone();
        assert_eq!(
            requests[0], requests[1],
            "the refresh went to the same endpoint"
        );
        assert_eq!(
            events(&mesh.store, id).await,
            ["Requested", "DataplanePlumbed", "Established", "Refreshed"]
        );
    });
}

#[test]
fn a_vwire_left_requested_by_a_flow_that_died_is_failed_at_start() {
    run_paused(|| async {
        let store = MemoryStore::new();
        // A node without a mesh records only the Request, as a flow cut short by a kill.
        let bare = Node::start(store.clone(), origin()).await;
        let id = VWireId::new_random();
        bare.manager
            .request(id, request(support::MINUTE), Causation::default())
            .await
            .unwrap();
        drop(bare);

        let mesh = mesh(store, 1, Arc::new(DryRun)).await;
        let state = mesh.manager.state(id).await.unwrap().unwrap();
        assert_eq!(state.status, Status::Failed);
        assert_eq!(events(&mesh.store, id).await, ["Requested", "Failed"]);
    });
}

#[test]
fn a_dead_datapath_is_replumbed_and_recorded_with_backoff_not_in_a_loop() {
    run_paused(|| async {
        let dataplane = Arc::new(ScriptedDataplane::default());
        let liveness = LivenessConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
        };
        let mesh = mesh_probing(MemoryStore::new(), 1, dataplane.clone(), Some(liveness)).await;
        let id = VWireId::new_random();
        mesh.request(id).await.unwrap();
        tokio::time::sleep(Duration::from_secs(70)).await;
        // Probes at 1s, then each heal doubles the wait: 1+2+4+8+16+32 = 63s.
        let heals = dataplane.plumbed.lock().unwrap().len() - 1;
        assert!((5..=7).contains(&heals), "{heals} heals in 70s");
        let recorded = events(&mesh.store, id).await;
        assert_eq!(
            recorded[..6],
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "ProbeFailed",
                "DataplanePlumbed",
                "Healed"
            ]
        );
        assert_eq!(
            recorded.iter().filter(|e| *e == "ProbeFailed").count(),
            heals
        );
        assert_eq!(recorded.iter().filter(|e| *e == "Healed").count(), heals);
    });
}

#[test]
fn reconcile_heals_what_is_broken_and_sweeps_only_what_no_live_vwire_owns() {
    run_paused(|| async {
        let dataplane = Arc::new(ScriptedDataplane::default());
        let mesh = mesh(MemoryStore::new(), 1, dataplane.clone()).await;
        let (broken, whole, ended) = (
            VWireId::new_random(),
            VWireId::new_random(),
            VWireId::new_random(),
        );
        for id in [broken, whole, ended] {
            mesh.request(id).await.unwrap();
        }
        mesh.manager
            .close(ended, ClosedBy::Client, "done".into(), Causation::default())
            .await
            .unwrap();
        dataplane
            .problems
            .lock()
            .unwrap()
            .insert(broken, vec!["nsm-1 is missing".into()]);
        *dataplane.objects.lock().unwrap() = vec![
            ScriptedDataplane::object(Some(whole), "whole's end"),
            ScriptedDataplane::object(Some(ended), "ended's end"),
            ScriptedDataplane::object(Some(VWireId::new_random()), "a stranger's end"),
            ScriptedDataplane::object(None, "a half-made pair"),
        ];
        let report = mesh.manager.reconcile().await.unwrap();
        assert_eq!(
            (
                report.checked,
                report.whole,
                report.healed,
                report.failed,
                report.orphans_removed
            ),
            (2, 1, 1, 0, 3)
        );
        let removed: Vec<String> = dataplane
            .removed
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.description.clone())
            .collect();
        assert_eq!(
            removed,
            ["ended's end", "a stranger's end", "a half-made pair"]
        );
        assert_eq!(
            events(&mesh.store, broken).await[3..],
            ["DataplanePlumbed", "Healed"]
        );
        assert_eq!(events(&mesh.store, whole).await.len(), 3);
        let node_stream = mesh
            .store
            .read_stream(&nsm_domain::dataplane::stream("node-a").unwrap(), 1)
            .await
            .unwrap();
        let types: Vec<&str> = node_stream.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["OrphansRemoved", "Reconciled"]);
    });
}
