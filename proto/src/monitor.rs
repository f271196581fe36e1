//! NSM's monitor semantics on wire types, shared by every MonitorConnection server: which
//! connections a `MonitorScopeSelector` selects (`sdk/pkg/api/networkservice/connection_helpers.go`,
//! `nsm-api.md` §8).

use crate::connection::{Connection, MonitorScopeSelector, PathSegment};

/// NSM's `MonitorScopeSelector` match: the service is listed (or none are), and the
/// selector's segments match a contiguous run of the path, empty fields matching anything.
pub fn selects(selector: &MonitorScopeSelector, connection: &Connection) -> bool {
    if !selector.network_services.is_empty()
        && !selector
            .network_services
            .contains(&connection.network_service)
    {
        return false;
    }
    let wanted = &selector.path_segments;
    if wanted.is_empty() {
        return true;
    }
    let path = connection
        .path
        .as_ref()
        .map_or(&[][..], |p| &p.path_segments[..]);
    path.windows(wanted.len()).any(|run| {
        run.iter()
            .zip(wanted)
            .all(|(have, want)| segment_matches(want, have))
    })
}

fn segment_matches(want: &PathSegment, have: &PathSegment) -> bool {
    let field = |want: &str, have: &str| want.is_empty() || want == have;
    field(&want.name, &have.name) && field(&want.id, &have.id) && field(&want.token, &have.token)
}

#[cfg(test)]
mod tests {
    use crate::connection::Path;

    use super::*;

    fn segment(name: &str, id: &str) -> PathSegment {
        PathSegment {
            name: name.into(),
            id: id.into(),
            ..PathSegment::default()
        }
    }

    #[test]
    fn a_selector_matches_a_contiguous_run_with_wildcards() {
        let connection = Connection {
            network_service: "icmp".into(),
            path: Some(Path {
                index: 2,
                path_segments: vec![
                    segment("nsc", "1"),
                    segment("nsmgr", "2"),
                    segment("nse", "3"),
                ],
            }),
            ..Connection::default()
        };
        let select = |services: &[&str], segments: Vec<PathSegment>| MonitorScopeSelector {
            network_services: services.iter().map(|s| (*s).to_owned()).collect(),
            path_segments: segments,
        };
        assert!(selects(&select(&[], vec![]), &connection));
        assert!(selects(
            &select(&["icmp"], vec![segment("", "2"), segment("nse", "")]),
            &connection
        ));
        assert!(!selects(&select(&["other"], vec![]), &connection));
        assert!(!selects(
            &select(&[], vec![segment("nsc", ""), segment("nse", "")]),
            &connection
        ));
    }
}
