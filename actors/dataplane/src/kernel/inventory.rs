//! Finding every link this node's kernel forwarder made, wherever it is now, and removing
//! the ones reconcile says nobody owns.
//!
//! The search covers every network namespace on the host ([`netns::all`]): a client's
//! namespace is not always one a live vWire names (the vWire may have failed before it was
//! recorded as plumbed). A link counts as this node's when its alias is this node's tag, or
//! — in the node's own namespace only — when it is a veth with a temporary name of this
//! node's, the half of a pair a crash interrupted.
//!
//! A locator is `<namespace URL>#<ifindex>#<name>`: removal re-opens the namespace and
//! removes the link only if the index still has that name and that tag, so a link that
//! changed since it was listed is left alone.

use super::netns::{self, Netns};
use super::rtnl::{Link, Rtnl};
use super::tag::{Tag, group_of};
use super::{Inner, Kernel};
use crate::contract::{DataplaneError, DataplaneObject};
use nsm_domain::vwire::DataplaneWork;

/// Every link of this node, across the host's namespaces.
pub(super) async fn scan(inner: &Inner) -> Result<Vec<DataplaneObject>, DataplaneError> {
    let mut found = Vec::new();
    for ns in netns::all() {
        let own = ns == inner.own_ns;
        let links = if own {
            inner.own.links().await
        } else {
            match Rtnl::open(&ns, &inner.runtime).await {
                Ok(rtnl) => rtnl.links().await,
                Err(e) => {
                    // A process may have ended since the list was made.
                    tracing::debug!(netns = %ns.url(), error = %e, "namespace skipped");
                    continue;
                }
            }
        };
        let links = match links {
            Ok(links) => links,
            Err(e) => {
                tracing::debug!(netns = %ns.url(), error = %e, "links not listed");
                continue;
            }
        };
        found.extend(links.iter().filter_map(|link| object(inner, &ns, link)));
    }
    Ok(found)
}

fn object(inner: &Inner, ns: &Netns, link: &Link) -> Option<DataplaneObject> {
    let locator = format!("{}#{}#{}", ns.url(), link.index, link.name);
    if let Some(tag) = link.alias.as_deref().and_then(Tag::parse)
        && tag.is_of(&inner.node)
    {
        return Some(DataplaneObject {
            vwire: Some(tag.vwire),
            description: format!("{} ({} end) in {}", link.name, tag.end, ns.url()),
            locator,
        });
    }
    if is_half_made(inner, link) {
        return Some(DataplaneObject {
            vwire: None,
            description: format!(
                "{} (untagged, of a pair whose making was interrupted) in {}",
                link.name,
                ns.url()
            ),
            locator,
        });
    }
    None
}

/// Removes the objects, each only if it is still the link that was listed.
pub(super) async fn remove(
    inner: &Inner,
    objects: Vec<DataplaneObject>,
) -> Result<DataplaneWork, DataplaneError> {
    let mut operations = Vec::new();
    for object in objects {
        let Some((url, index, name)) = parse_locator(&object.locator) else {
            operations.push(format!(
                "skipped {}: not a kernel locator",
                object.description
            ));
            continue;
        };
        match remove_one(inner, url, index, name, &object).await {
            Ok(Some(line)) | Err(line) => operations.push(line),
            Ok(None) => {}
        }
    }
    Ok(DataplaneWork {
        dataplane: Kernel::NAME.to_owned(),
        dry_run: false,
        operations,
    })
}

/// `Ok(None)`: already gone (a pair's other half went with the first).
async fn remove_one(
    inner: &Inner,
    url: &str,
    index: u32,
    name: &str,
    object: &DataplaneObject,
) -> Result<Option<String>, String> {
    let ns = match Netns::open(url) {
        Ok(ns) => ns,
        Err(e) => return Err(format!("skipped {}: {e}", object.description)),
    };
    let separate;
    let rtnl = if ns == inner.own_ns {
        inner.own.as_ref()
    } else {
        separate = Rtnl::open(&ns, &inner.runtime)
            .await
            .map_err(|e| format!("skipped {}: {e}", object.description))?;
        &separate
    };
    let current = rtnl
        .link_by_name(name)
        .await
        .map_err(|e| format!("skipped {}: {e}", object.description))?;
    let Some(link) = current.filter(|l| l.index == index) else {
        return Ok(None);
    };
    let still_ours = match object.vwire {
        Some(vwire) => link
            .alias
            .as_deref()
            .and_then(Tag::parse)
            .is_some_and(|t| t.vwire == vwire && t.is_of(&inner.node)),
        None => is_half_made(inner, &link),
    };
    if !still_ours {
        return Err(format!(
            "left {}: it changed since it was listed",
            object.description
        ));
    }
    rtnl.delete_link(index, name)
        .await
        .map_err(|e| format!("could not remove {}: {e}", object.description))?;
    Ok(Some(format!("removed {}", object.description)))
}

/// An untagged veth in this node's group.
fn is_half_made(inner: &Inner, link: &Link) -> bool {
    link.is_veth && link.alias.is_none() && link.group == group_of(&inner.node)
}

fn parse_locator(locator: &str) -> Option<(&str, u32, &str)> {
    let mut parts = locator.rsplitn(3, '#');
    let name = parts.next()?;
    let index = parts.next()?.parse().ok()?;
    let url = parts.next()?;
    Some((url, index, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_read_back() {
        assert_eq!(
            parse_locator("file:///run/netns/c1#7#nsm-1"),
            Some(("file:///run/netns/c1", 7, "nsm-1"))
        );
        assert_eq!(parse_locator("nonsense"), None);
    }
}
