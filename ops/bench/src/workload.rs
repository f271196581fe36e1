//! Synthetic but realistic vWire histories for the benchmarks, made by the runtime's own
//! `decide` and fold, so what is benchmarked is what a node writes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use nsm_domain::vwire::{
    ClosedBy, Command, ConnectionContext, EndpointRef, IpContext, Mechanism, MechanismClass, Path,
    PathSegment, ServiceName, SpiffeId, VWire, VWireEvent, VWireId, VWireRequest, decide,
};
use nsm_log::projection::vwire::change_for;
use nsm_log::store::{AppendRequest, Causation, EventStore, ExpectedVersion};

const LIFETIME: Duration = Duration::from_secs(600);

/// The events of one vWire: requested, established, refreshed until it has `events`
/// events, and closed if `close` (the close counts as one of them).
pub(crate) fn history(
    id: VWireId,
    mut now: DateTime<Utc>,
    events: u64,
    close: bool,
) -> anyhow::Result<(Vec<VWireEvent>, VWire)> {
    let n = id.0.as_u128() % 250;
    let request = VWireRequest {
        service: ServiceName::new(format!("service-{}", n % 7))?,
        labels: [("app".to_owned(), format!("app-{n}"))].into(),
        client: SpiffeId::new(format!("spiffe://cluster.local/ns/default/sa/client-{n}"))?,
        mechanism_preferences: vec![Mechanism::new(MechanismClass::Local, "KERNEL")],
        path: path(id, now),
        lifetime: LIFETIME,
    };
    let lifetime = chrono::Duration::from_std(LIFETIME)?;
    let mut commands = vec![
        Command::Request(request),
        Command::Establish {
            endpoint: EndpointRef {
                name: format!("nse-{}", n % 13),
                url: format!("unix:///run/nsm/nse-{}.sock", n % 13),
            },
            payload: nsm_domain::registry::Payload::Ethernet,
            mechanism: Mechanism::new(MechanismClass::Local, "KERNEL"),
            context: context(n),
            path: path(id, now),
            expires_at: now + lifetime,
        },
    ];
    let refreshes = events.saturating_sub(2 + u64::from(close));
    commands.extend((0..refreshes).map(|_| Command::Refresh {
        expires_at: now + lifetime,
        path: None,
    }));
    if close {
        commands.push(Command::Close {
            by: ClosedBy::Client,
            reason: "benchmark".into(),
        });
    }
    let mut state: Option<VWire> = None;
    let mut recorded = Vec::with_capacity(commands.len());
    for mut command in commands {
        now += chrono::Duration::seconds(1);
        if let Command::Refresh { expires_at, .. } | Command::Establish { expires_at, .. } =
            &mut command
        {
            *expires_at = now + lifetime;
        }
        for event in decide(state.as_ref(), &command, now)? {
            state = Some(VWire::evolve(state, id, &event)?);
            recorded.push(event);
        }
    }
    let state = state.ok_or_else(|| anyhow::anyhow!("no history"))?;
    Ok((recorded, state))
}

fn path(id: VWireId, now: DateTime<Utc>) -> Path {
    let segment = |name: &str| PathSegment {
        name: name.into(),
        id: id.to_string(),
        token: String::new(),
        expires: Some(now),
        metrics: Default::default(),
    };
    Path {
        index: 0,
        segments: vec![segment("nsc"), segment("nsmgr-node-1")],
    }
}

fn context(n: u128) -> ConnectionContext {
    let (a, b) = (n / 250, n % 250);
    ConnectionContext {
        ip: IpContext {
            src_ip_addrs: vec![format!("172.16.{a}.{}/32", b + 1)],
            dst_ip_addrs: vec![format!("172.16.{}.{}/32", a + 100, b + 1)],
            ..IpContext::default()
        },
        mtu: Some(1450),
        ..ConnectionContext::default()
    }
}

/// Writes `vwires` histories of `events_per_vwire` events into `store`, one append per
/// vWire (with its projection row), `concurrency` appends in flight. One in `close_every`
/// is closed. Returns the live vWires' ids.
pub(crate) async fn fill(
    store: Arc<dyn EventStore>,
    vwires: u64,
    events_per_vwire: u64,
    close_every: u64,
    concurrency: usize,
) -> anyhow::Result<Vec<VWireId>> {
    let start = Utc::now() - chrono::Duration::seconds(60);
    let appends = futures::stream::iter(0..vwires).map(|i| {
        let store = store.clone();
        async move {
            let id = VWireId::new_random();
            let close = close_every > 0 && i % close_every == close_every - 1;
            let (events, state) = history(id, start, events_per_vwire, close)?;
            let new_events = events
                .iter()
                .map(|e| e.to_new_event(Causation::default()))
                .collect::<Result<Vec<_>, _>>()?;
            let request = AppendRequest::new(id.stream(), ExpectedVersion::NoStream, new_events)
                .with_projection(change_for(&state)?);
            store.append(request).await?;
            anyhow::Ok((!close).then_some(id))
        }
    });
    let mut live = Vec::new();
    let mut results = appends.buffer_unordered(concurrency);
    while let Some(result) = results.next().await {
        live.extend(result?);
    }
    Ok(live)
}
