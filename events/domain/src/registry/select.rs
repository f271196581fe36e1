//! Endpoint selection: which registered endpoints may serve a request, and in which order to
//! try them. Pure; the runtime keeps the round-robin state.
//!
//! Matching follows NSM (sdk `discover` + `matchutils`): with no matches every endpoint of the
//! service is a candidate; otherwise the first match whose `source_selector` is contained in
//! the request labels decides: a match without routes selects every endpoint (it only carries
//! forwarder metadata), else the candidates are the endpoints whose labels for the service
//! contain a route's `destination_selector` (values may be `{{.label}}` templates filled from
//! the request labels). An empty result with `fallthrough` goes on to the next match; an
//! empty result without it means no endpoint. When no match's source selector fits, every
//! endpoint is a candidate. Expired endpoints are never candidates.
//!
//! Unlike NSM, `Destination.weight` is honoured: [`RoundRobin`] is a smooth weighted round
//! robin per service (weight 0 counts as 1), and the other candidates follow as fallbacks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::model::NetworkService;
use super::state::EndpointState;
use crate::vwire::Labels;

/// An endpoint that may serve the request, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub endpoint: &'a EndpointState,
    pub weight: u32,
}

/// Fills `{{.name}}` / `{{ .name }}` placeholders from the request labels. A missing label
/// renders as `<no value>`, as Go's text/template does for a missing map key.
pub fn render(template: &str, labels: &Labels) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = rest[start + 2..start + end].trim();
        match inner.strip_prefix('.') {
            Some(key) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                out.push_str(labels.get(key).map_or("<no value>", String::as_str));
            }
            // Not a plain field reference: leave it as written.
            _ => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// True if every selector entry (rendered against `request`) is in `labels`.
fn contains(labels: &Labels, selector: &Labels, request: &Labels) -> bool {
    selector.iter().all(|(key, value)| {
        labels
            .get(key)
            .is_some_and(|have| have == value || *have == render(value, request))
    })
}

/// The endpoints that may serve a request for `service` with `request` labels, in
/// registration-name order, deduplicated (an endpoint matching several routes keeps the
/// highest weight).
pub fn candidates<'a>(
    service: &NetworkService,
    request: &Labels,
    endpoints: impl IntoIterator<Item = &'a EndpointState>,
    now: DateTime<Utc>,
) -> Vec<Candidate<'a>> {
    let mut usable: Vec<&EndpointState> = endpoints
        .into_iter()
        .filter(|e| e.is_registered() && e.registration.expiration_time > now)
        .filter(|e| e.spec.services.contains(&service.name))
        .collect();
    usable.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let everyone = |usable: &[&'a EndpointState]| {
        usable
            .iter()
            .map(|&endpoint| Candidate {
                endpoint,
                weight: 1,
            })
            .collect()
    };
    for rule in &service.matches {
        if !contains(request, &rule.source_selector, request) {
            continue;
        }
        if rule.routes.is_empty() {
            return everyone(&usable);
        }
        let mut chosen: Vec<Candidate<'a>> = Vec::new();
        for route in &rule.routes {
            for &endpoint in &usable {
                let labels = endpoint.spec.labels_for(&service.name);
                if !contains(&labels, &route.destination_selector, request) {
                    continue;
                }
                let weight = route.weight.max(1);
                match chosen
                    .iter_mut()
                    .find(|c| c.endpoint.spec.name == endpoint.spec.name)
                {
                    Some(seen) => seen.weight = seen.weight.max(weight),
                    None => chosen.push(Candidate { endpoint, weight }),
                }
            }
        }
        if chosen.is_empty() && rule.fallthrough {
            continue;
        }
        return chosen;
    }
    everyone(&usable)
}

/// Smooth weighted round robin (as nginx does it), one state per service: over any window,
/// each candidate is chosen in proportion to its weight, without bursts.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Current weight per (service, endpoint name).
    current: HashMap<(String, String), i64>,
}

impl RoundRobin {
    /// Orders `candidates` for one request: the round robin's choice first, then the others
    /// by descending weight as fallbacks if the first fails.
    pub fn order<'a>(
        &mut self,
        service: &str,
        candidates: Vec<Candidate<'a>>,
    ) -> Vec<Candidate<'a>> {
        if candidates.len() < 2 {
            return candidates;
        }
        let total: i64 = candidates.iter().map(|c| i64::from(c.weight)).sum();
        let mut best = 0;
        let mut best_value = i64::MIN;
        for (index, candidate) in candidates.iter().enumerate() {
            let key = (service.to_owned(), candidate.endpoint.spec.name.to_string());
            let value = self.current.entry(key).or_insert(0);
            *value += i64::from(candidate.weight);
            if *value > best_value {
                best_value = *value;
                best = index;
            }
        }
        let chosen_key = (
            service.to_owned(),
            candidates[best].endpoint.spec.name.to_string(),
        );
        if let Some(value) = self.current.get_mut(&chosen_key) {
            *value -= total;
        }
        let mut ordered = candidates;
        let first = ordered.remove(best);
        ordered.sort_by_key(|c| std::cmp::Reverse(c.weight));
        ordered.insert(0, first);
        ordered
    }

    /// Forgets an endpoint (unregistered or expired), so the state stays bounded.
    pub fn forget(&mut self, endpoint: &str) {
        self.current.retain(|(_, name), _| name != endpoint);
    }
}

#[cfg(test)]
mod tests;
