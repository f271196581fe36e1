//! How fast the kernel data plane plumbs and unplumbs: N vWires between one client and one
//! endpoint namespace, a fixed number in flight, each with its own interface names and /32
//! addresses (10.128.0.0/9, two per vWire). Every plumb and unplumb runs to its end, even
//! after another failed, so that none is cut off half-made.

use std::collections::HashSet;
use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::bail;
use futures::StreamExt;
use nsm_dataplane::kernel::Kernel;
use nsm_dataplane::kernel::netns::Netns;
use nsm_dataplane::{Dataplane, DataplaneError, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{DataplaneWork, Plumbing, VWireId};
use tokio::time::Instant;

use super::super::quantile_ms;
use super::{kernel_end, p2p};

/// The first address handed out.
const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);

/// What to plumb, and how many at once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    pub(super) vwires: u32,
    pub(super) concurrency: usize,
}

/// Rates over the whole load; latencies of single operations.
#[derive(Debug)]
pub(super) struct Rates {
    pub(super) plumbed_per_s: f64,
    pub(super) unplumbed_per_s: f64,
    pub(super) p50_plumb_ms: f64,
    pub(super) p99_plumb_ms: f64,
    pub(super) p50_unplumb_ms: f64,
    pub(super) p99_unplumb_ms: f64,
}

impl Load {
    /// Plumbs every vWire between `client` and `endpoint`, unplumbs them all, and checks
    /// that nothing of them is left on the host.
    pub(super) async fn run(
        self,
        kernel: &Kernel,
        client: &Netns,
        endpoint: &Netns,
    ) -> anyhow::Result<Rates> {
        let requests: Vec<_> = (0..self.vwires)
            .map(|i| request(client, endpoint, i))
            .collect();
        let plumbs = requests.iter().map(|r| kernel.plumb(r.clone()));
        let (plumb_took, plumb_latencies) = self.timed(plumbs).await?;
        let unplumbs = requests.iter().map(|r| {
            let plumbing = Plumbing {
                dataplane: Kernel::NAME.to_owned(),
                dry_run: false,
                client_mechanism: r.client.clone(),
                endpoint_mechanism: r.endpoint.clone(),
                plumbed_at: chrono::Utc::now(),
            };
            kernel.unplumb(r.vwire, &plumbing)
        });
        let (unplumb_took, unplumb_latencies) = self.timed(unplumbs).await?;
        let ours: HashSet<VWireId> = requests.iter().map(|r| r.vwire).collect();
        let left: Vec<_> = kernel
            .inventory()
            .await?
            .into_iter()
            .filter(|o| o.vwire.is_some_and(|v| ours.contains(&v)))
            .collect();
        if let Some(first) = left.first() {
            bail!(
                "unplumbing left {} links behind, among them {}",
                left.len(),
                first.description
            );
        }
        let per_s = |took: Duration| f64::from(self.vwires) / took.as_secs_f64();
        Ok(Rates {
            plumbed_per_s: per_s(plumb_took),
            unplumbed_per_s: per_s(unplumb_took),
            p50_plumb_ms: quantile_ms(&plumb_latencies, 0.50),
            p99_plumb_ms: quantile_ms(&plumb_latencies, 0.99),
            p50_unplumb_ms: quantile_ms(&unplumb_latencies, 0.50),
            p99_unplumb_ms: quantile_ms(&unplumb_latencies, 0.99),
        })
    }

    /// Runs `operations`, `concurrency` at a time, every one to its end; returns the wall
    /// time and each one's latency, sorted, or the first error.
    async fn timed<F>(
        &self,
        operations: impl Iterator<Item = F>,
    ) -> Result<(Duration, Vec<Duration>), DataplaneError>
    where
        F: Future<Output = Result<DataplaneWork, DataplaneError>>,
    {
        let began = Instant::now();
        let outcomes: Vec<_> = futures::stream::iter(operations.map(|operation| async {
            let started = Instant::now();
            operation.await.map(|_| started.elapsed())
        }))
        .buffer_unordered(self.concurrency)
        .collect()
        .await;
        let took = began.elapsed();
        let mut latencies = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
        latencies.sort_unstable();
        Ok((took, latencies))
    }
}

/// vWire `i`: interfaces `nsm-<i>` and `nse-<i>`, addresses 2i and 2i + 1 after
/// [`FIRST_ADDRESS`].
fn request(client: &Netns, endpoint: &Netns, i: u32) -> PlumbRequest {
    let address = |n: u32| Ipv4Addr::from(u32::from(FIRST_ADDRESS) + n);
    PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Payload::Ethernet,
        client: kernel_end(client, &format!("nsm-{i}")),
        endpoint: kernel_end(endpoint, &format!("nse-{i}")),
        context: p2p(address(2 * i), address(2 * i + 1)),
    }
}
