//! `nsm bench authz`: what authorizing one call costs a hop, end to end: the endpoint of a
//! 3-hop path (client `nsc`, node `nsmgr`, endpoint `nse`) reads the claims of every
//! segment's ES256 token, verifies the previous hop's signature with the caller's
//! certificate key, and evaluates every default policy (`nsm-policy`) on the facts.
//!
//! Why: NSM's users measured ~94 ms per authorization under CPU limits (Rego evaluated per
//! call); the target here is a p50 under 100 µs on this machine. The parts are timed on
//! their own too (`verify_*`: the one signature check; `policy_*`: the policies alone), so a
//! regression says where it is. Identities come from a throw-away trust domain made for the
//! run (P-256 keys, as SPIRE issues them); tokens are signed once, as a hop receives them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use nsm_identity::{
    PathClaims, SpiffeId, Svid, ThrowAwayTrustDomain, read_path_claims, sign_path_token,
    verify_path_token,
};
use nsm_inspect::output::print_report;
use nsm_policy::{Call, Input, Path, Policies, Segment, Side, TokenFacts};
use serde::Serialize;
use tokio::time::Instant;

/// The hops of the path, in order; the last one authorizes.
const HOPS: [&str; 3] = ["nsc", "nsmgr", "nse"];
const SERVICE: &str = "secure-intranet";
const TRUST_DOMAIN: &str = "nsm-rs.bench";

#[derive(Debug, Args)]
pub struct AuthzArgs {
    /// Authorizations timed (after as many again unmeasured, to warm up).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    iterations: u32,
    /// Also give the policies a per-service allow list (one service, the trust domain's
    /// workloads), as a node that enforces one would.
    #[arg(long)]
    allow_list: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct AuthzReport {
    /// One whole authorization: read 3 tokens, verify 1 signature, evaluate every policy.
    authz_p50_us: f64,
    authz_p99_us: f64,
    /// The policies alone, on the facts.
    policy_p50_us: f64,
    policy_p99_us: f64,
    /// The one ES256 signature check (the caller's token, with its certificate key).
    verify_p50_us: f64,
    verify_p99_us: f64,
    hops: usize,
    tokens_read_per_authz: usize,
    signatures_verified_per_authz: usize,
    policies: Vec<String>,
    allow_list: bool,
    iterations: u32,
}

pub(crate) async fn run(args: AuthzArgs) -> anyhow::Result<()> {
    let path = SignedPath::new().context("cannot make the bench's identities and tokens")?;
    let policies = match args.allow_list {
        true => Policies::builtin_with_data(serde_json::json!({
            "services": { SERVICE: [format!("spiffe://{TRUST_DOMAIN}/*")] }
        })),
        false => Policies::builtin(),
    }
    .context("cannot load the default policies")?;
    // A refused sample would time the refusal path: check once before timing.
    if let Err(denied) = policies.authorize(&path.facts(now_seconds())?) {
        bail!("the bench's own well-formed path was refused: {denied}");
    }
    let iterations = args.iterations as usize;
    let mut whole = Vec::with_capacity(iterations);
    let mut policy_only = Vec::with_capacity(iterations);
    let mut verify_only = Vec::with_capacity(iterations);
    let now = now_seconds();
    let facts = path.facts(now)?;
    for round in 0..2 * iterations {
        let began = Instant::now();
        let input = path.facts(now)?;
        let allowed = policies.authorize(&input);
        let took = began.elapsed();

        let began = Instant::now();
        let policy = policies.authorize(&facts);
        let policy_took = began.elapsed();

        let began = Instant::now();
        let verified = path.verify_previous();
        let verify_took = began.elapsed();

        if let Err(denied) = allowed.and(policy) {
            bail!("authorization {round} was refused: {denied}");
        }
        verified.context("the caller's token did not verify")?;
        if round >= iterations {
            whole.push(took);
            policy_only.push(policy_took);
            verify_only.push(verify_took);
        }
    }
    let (authz_p50_us, authz_p99_us) = p50_p99_us(&mut whole);
    let (policy_p50_us, policy_p99_us) = p50_p99_us(&mut policy_only);
    let (verify_p50_us, verify_p99_us) = p50_p99_us(&mut verify_only);
    let report = AuthzReport {
        authz_p50_us,
        authz_p99_us,
        policy_p50_us,
        policy_p99_us,
        verify_p50_us,
        verify_p99_us,
        hops: HOPS.len(),
        tokens_read_per_authz: HOPS.len(),
        signatures_verified_per_authz: 1,
        policies: policies.names().map(str::to_owned).collect(),
        allow_list: args.allow_list,
        iterations: args.iterations,
    };
    print_report(&report, args.json)
}

/// The path as the endpoint receives it: every hop's token, and the caller's certificate.
struct SignedPath {
    tokens: Vec<String>,
    /// The caller's (`nsmgr`'s) certificate public key, as TLS gives it.
    caller_key: Vec<u8>,
    caller: SpiffeId,
}

impl SignedPath {
    fn new() -> anyhow::Result<Self> {
        let ca = ThrowAwayTrustDomain::new(TRUST_DOMAIN)?;
        let svids = HOPS
            .iter()
            .map(|hop| {
                let id = SpiffeId::from_parts(ca.trust_domain(), &format!("/{hop}"))?;
                Ok(ca.issue(&id, Duration::from_secs(3600))?.svid()?)
            })
            .collect::<anyhow::Result<Vec<Svid>>>()?;
        let now = SystemTime::now();
        let lifetime = Duration::from_secs(600);
        let tokens = svids
            .iter()
            .enumerate()
            .map(|(i, own)| {
                // Each token is addressed to the next hop; the last to the hop it answers.
                let answered = i.checked_sub(1).and_then(|p| svids.get(p));
                let peer = svids.get(i + 1).or(answered).context("a path of one hop")?;
                let (token, _) =
                    sign_path_token(own, peer.spiffe_id(), peer.not_after(), lifetime, now)?;
                Ok(token)
            })
            .collect::<anyhow::Result<Vec<String>>>()?;
        let caller = &svids[HOPS.len() - 2];
        Ok(Self {
            tokens,
            caller_key: caller.identity().public_key.as_ref().to_vec(),
            caller: caller.spiffe_id().clone(),
        })
    }

    /// The policies' input, computed from the tokens as a hop does on every call.
    fn facts(&self, now: i64) -> anyhow::Result<Input> {
        let last = HOPS.len() - 1;
        let segments = self
            .tokens
            .iter()
            .zip(HOPS)
            .enumerate()
            .map(|(i, (token, hop))| {
                let claims = read_path_claims(token)?;
                let signed_by_caller = i + 1 == last && self.verify(token).is_ok();
                Ok(Segment {
                    name: hop.to_owned(),
                    id: format!("{hop}-connection"),
                    token: token_facts(claims, signed_by_caller),
                })
            })
            .collect::<anyhow::Result<Vec<Segment>>>()?;
        Ok(Input {
            call: Call::Request,
            side: Side::Server,
            caller: Some(self.caller.to_string()),
            server: None,
            path: Path {
                index: last as u32,
                segments,
            },
            now,
            service: Some(SERVICE.to_owned()),
            resource: None,
            monitor: None,
        })
    }

    fn verify_previous(&self) -> anyhow::Result<PathClaims> {
        self.verify(&self.tokens[HOPS.len() - 2])
    }

    fn verify(&self, token: &str) -> anyhow::Result<PathClaims> {
        Ok(verify_path_token(
            token,
            &self.caller_key,
            SystemTime::now(),
        )?)
    }
}

fn token_facts(claims: PathClaims, signed_by_caller: bool) -> TokenFacts {
    TokenFacts {
        present: true,
        decoded: true,
        sub: Some(claims.sub),
        aud: claims.aud,
        exp: i64::try_from(claims.exp).ok(),
        signed_by_caller,
        signed_by_server: false,
    }
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The median and 99th percentile, in microseconds (rounded to 0.1).
fn p50_p99_us(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len().saturating_sub(1)) as f64 * q).round() as usize;
        let micros = samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6);
        (micros * 10.0).round() / 10.0
    };
    (at(0.5), at(0.99))
}
