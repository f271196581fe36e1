//! NSM's `updatepath` and `trimpath` for the endpoint, the last hop of a path
//! (`nsm-api.md` §8).
//!
//! [`enter`] finds or makes the endpoint's own segment and points `path.index` and
//! `connection.id` at it while the endpoint works; [`leave`] cuts the segments after it and
//! gives back the caller's index and id, as NSM's hops do on return.

use chrono::{DateTime, Duration, Utc};
use nsm_proto::connection::{Connection, PathSegment};
use nsm_proto::convert::time_to_wire;
use prost_types::Timestamp;

/// Our segment's lifetime when the caller's segment carries none (NSM's default token
/// lifetime).
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::minutes(10);

/// Where the endpoint stands in a connection's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    caller_index: u32,
    caller_id: String,
    /// Our segment's index.
    pub(crate) index: usize,
    /// Our segment's id: the connection's id at this endpoint, and the IPAM key.
    pub(crate) id: String,
    /// The previous segment's `expires`, if it has one.
    pub(crate) previous_expires: Option<Timestamp>,
}

/// Takes the endpoint's place in the path (a Request, or a Close). Errors are messages
/// for `InvalidArgument`.
pub(crate) fn enter(
    connection: &mut Connection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Hop, String> {
    if connection.id.is_empty() {
        return Err("connection.id is empty".into());
    }
    let caller_id = connection.id.clone();
    let path = connection
        .path
        .as_mut()
        .ok_or("connection.path is missing")?;
    let caller_index = path.index;
    let at = usize::try_from(caller_index).unwrap_or(usize::MAX);
    let segments = &mut path.path_segments;
    let Some(current) = segments.get(at) else {
        return Err(format!(
            "connection.path.index {caller_index} is outside its {} segments",
            segments.len()
        ));
    };
    let index = if current.name == name {
        // The caller already put us at its index (NSM reuses the segment: a refresh).
        at
    } else if current.id != caller_id {
        return Err(format!(
            "connection.path.path_segments[{at}].id is {:?} but connection.id is {caller_id:?}",
            current.id
        ));
    } else {
        let next = at + 1;
        match segments.get_mut(next) {
            Some(segment) if segment.name == name && !segment.id.is_empty() => {}
            Some(segment) => *segment = new_segment(name),
            None => segments.push(new_segment(name)),
        }
        next
    };
    let previous_expires = index.checked_sub(1).and_then(|i| segments[i].expires);
    let expires = previous_expires.unwrap_or_else(|| time_to_wire(now + DEFAULT_LIFETIME));
    let ours = &mut segments[index];
    ours.expires = Some(expires);
    let id = ours.id.clone();
    path.index = u32::try_from(index).map_err(|_| "connection.path is too long".to_owned())?;
    connection.id.clone_from(&id);
    Ok(Hop {
        caller_index,
        caller_id,
        index,
        id,
        previous_expires,
    })
}

/// Finds the endpoint's segment without changing anything (a Close): at `index + 1`, or at
/// `index` if the caller already points at us.
pub(crate) fn find_own_id(connection: &Connection, name: &str) -> Option<String> {
    let path = connection.path.as_ref()?;
    let at = usize::try_from(path.index).ok()?;
    [at, at + 1]
        .into_iter()
        .filter_map(|i| path.path_segments.get(i))
        .find(|s| s.name == name && !s.id.is_empty())
        .map(|s| s.id.clone())
}

/// Cuts the segments after ours and gives back the caller's index and id.
pub(crate) fn leave(connection: &mut Connection, hop: &Hop) {
    if let Some(path) = connection.path.as_mut() {
        path.path_segments.truncate(hop.index + 1);
        path.index = hop.caller_index;
    }
    connection.id.clone_from(&hop.caller_id);
}

fn new_segment(name: &str) -> PathSegment {
    PathSegment {
        name: name.to_owned(),
        id: uuid::Uuid::new_v4().to_string(),
        ..PathSegment::default()
    }
}

#[cfg(test)]
mod tests {
    use nsm_proto::connection::Path;

    use super::*;

    fn segment(name: &str, id: &str) -> PathSegment {
        PathSegment {
            name: name.into(),
            id: id.into(),
            ..PathSegment::default()
        }
    }

    fn connection(id: &str, index: u32, segments: Vec<PathSegment>) -> Connection {
        Connection {
            id: id.into(),
            path: Some(Path {
                index,
                path_segments: segments,
            }),
            ..Connection::default()
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000, 0).unwrap()
    }

    #[test]
    fn a_first_request_appends_our_segment_and_restores_the_callers_view() {
        let mut caller = segment("nsmgr", "c1");
        caller.expires = Some(time_to_wire(now() + Duration::seconds(30)));
        let mut conn = connection("c1", 0, vec![caller.clone()]);
        let hop = enter(&mut conn, "nse", now()).unwrap();
        assert_eq!((hop.index, conn.id.as_str()), (1, hop.id.as_str()));
        let path = conn.path.as_ref().unwrap();
        assert_eq!(path.index, 1);
        assert_eq!(path.path_segments[1].name, "nse");
        assert_eq!(path.path_segments[1].expires, caller.expires);
        leave(&mut conn, &hop);
        assert_eq!(
            (conn.id.as_str(), conn.path.as_ref().unwrap().index),
            ("c1", 0)
        );
    }

    #[test]
    fn a_refresh_reuses_our_segment_id() {
        let mut conn = connection(
            "c1",
            0,
            vec![segment("nsmgr", "c1"), segment("nse", "mine")],
        );
        let hop = enter(&mut conn, "nse", now()).unwrap();
        assert_eq!(hop.id, "mine");
        let ours = &conn.path.as_ref().unwrap().path_segments[1];
        assert_eq!(ours.expires, Some(time_to_wire(now() + DEFAULT_LIFETIME)));
    }

    #[test]
    fn a_segment_of_another_hop_is_replaced_and_later_ones_trimmed() {
        let segments = vec![
            segment("nsmgr", "c1"),
            segment("old-nse", "x"),
            segment("y", "z"),
        ];
        let mut conn = connection("c1", 0, segments);
        let hop = enter(&mut conn, "nse", now()).unwrap();
        assert_ne!(hop.id, "x");
        leave(&mut conn, &hop);
        let names: Vec<_> = conn
            .path
            .as_ref()
            .unwrap()
            .path_segments
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["nsmgr", "nse"]);
        assert_eq!(find_own_id(&conn, "nse"), Some(hop.id));
    }

    #[test]
    fn malformed_paths_are_refused_with_the_field_named() {
        let cases = [
            (
                connection("c1", 0, vec![segment("nsmgr", "other")]),
                "path_segments[0].id",
            ),
            (connection("c1", 3, vec![segment("nsmgr", "c1")]), "index 3"),
            (
                connection("", 0, vec![segment("nsmgr", "")]),
                "connection.id",
            ),
            (
                Connection {
                    id: "c1".into(),
                    ..Connection::default()
                },
                "path is missing",
            ),
            (connection("c1", 0, vec![]), "outside its 0"),
        ];
        for (mut conn, why) in cases {
            let error = enter(&mut conn, "nse", now()).unwrap_err();
            assert!(error.contains(why), "{why}: {error}");
        }
    }
}
