//! Netlink (rtnetlink) in one network namespace: the handful of requests the kernel
//! forwarder makes — links, addresses, routes — with the kernel's errno kept, so callers
//! can tell "already exists" from "not permitted" from "gone".
//!
//! A connection's socket is made by a thread that entered the namespace ([`Netns::run`]),
//! then driven by a task on the forwarder's runtime. The task ends when the connection is
//! dropped: a socket holds its namespace alive, so none outlives the work it was made for.

use std::net::IpAddr;

use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::netns::{Netns, NetnsError};

/// A netlink request the kernel refused, or that could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RtnlError {
    /// The kernel answered with an error number.
    #[error("{what}: {}", errno.desc())]
    Kernel { what: String, errno: Errno },
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The socket failed, or an answer could not be read.
    #[error("{what}: {reason}")]
    Transport { what: String, reason: String },
}

impl RtnlError {
    pub(crate) fn errno(&self) -> Option<Errno> {
        match self {
            RtnlError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    fn from_netlink(what: impl Into<String>, error: rtnetlink::Error) -> Self {
        let what = what.into();
        match error {
            rtnetlink::Error::NetlinkError(message) => RtnlError::Kernel {
                what,
                errno: Errno::from_raw(-message.raw_code()),
            },
            other => RtnlError::Transport {
                what,
                reason: other.to_string(),
            },
        }
    }
}

/// A link as the forwarder needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) alias: Option<String>,
    pub(crate) up: bool,
    pub(crate) is_veth: bool,
    /// Its device group (`ip link show group N`).
    pub(crate) group: u32,
    /// Its Ethernet address, if it has one.
    pub(crate) mac: Option<[u8; 6]>,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            alias: None,
            up: message.header.flags.contains(LinkFlags::Up),
            is_veth: false,
            group: 0,
            mac: None,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
                LinkAttribute::Group(group) => link.group = *group,
                LinkAttribute::Address(bytes) => link.mac = bytes.as_slice().try_into().ok(),
                LinkAttribute::LinkInfo(infos) => {
                    link.is_veth = infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
                }
                _ => {}
            }
        }
        link
    }
}

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) link: u32,
    pub(crate) ip: IpAddr,
    pub(crate) prefix_len: u8,
}

/// A route to add: to `prefix/len` through link `link`, by `gateway` or on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewRoute {
    pub(crate) prefix: IpAddr,
    pub(crate) len: u8,
    pub(crate) gateway: Option<IpAddr>,
    pub(crate) link: u32,
}

/// One end of a pair to make, made directly in its namespace.
#[derive(Debug, Clone)]
pub(crate) struct VethEnd<'a> {
    pub(crate) name: &'a str,
    pub(crate) netns: &'a Netns,
    pub(crate) group: u32,
    pub(crate) mtu: Option<u32>,
    pub(crate) mac: Option<[u8; 6]>,
}

/// A netlink connection in one namespace.
#[derive(Debug)]
pub(crate) struct Rtnl {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
    /// Held for the whole of a dump (every link, every address): the kernel runs one dump
    /// at a time per socket and answers a second one begun meanwhile with `EBUSY`, so
    /// concurrent plumbs sharing the node's connection would fail "Device or resource busy".
    dumping: tokio::sync::Mutex<()>,
}

impl Drop for Rtnl {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Rtnl {
    /// A connection whose socket lives in `ns`, driven on `runtime`.
    pub(crate) async fn open(
        ns: &Netns,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, RtnlError> {
        let entered = runtime.clone();
        let made = ns
            .run(move || {
                let _guard = entered.enter();
                rtnetlink::new_connection()
            })
            .await?;
        let (connection, handle, _unsolicited) = made.map_err(|e| RtnlError::Transport {
            what: format!("netlink socket in {}", ns.url()),
            reason: e.to_string(),
        })?;
        let task = runtime.spawn(connection);
        Ok(Self {
            handle,
            task,
            dumping: tokio::sync::Mutex::new(()),
        })
    }

    /// The link named `name`, if there is one.
    pub(crate) async fn link_by_name(&self, name: &str) -> Result<Option<Link>, RtnlError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(message) => Ok(message.as_ref().map(Link::from_message)),
            Err(e) => match RtnlError::from_netlink(format!("find link {name}"), e) {
                RtnlError::Kernel {
                    errno: Errno::ENODEV,
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Every link of the namespace.
    pub(crate) async fn links(&self) -> Result<Vec<Link>, RtnlError> {
        let _one_dump_at_a_time = self.dumping.lock().await;
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| RtnlError::from_netlink("list links", e))?;
        Ok(messages.iter().map(Link::from_message).collect())
    }

    /// Every address of the namespace.
    pub(crate) async fn addresses(&self) -> Result<Vec<Address>, RtnlError> {
        let _one_dump_at_a_time = self.dumping.lock().await;
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| RtnlError::from_netlink("list addresses", e))?;
        Ok(messages
            .iter()
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                Some(Address {
                    link: m.header.index,
                    ip,
                    prefix_len: m.header.prefix_len,
                })
            })
            .collect())
    }

    /// Makes a veth pair, each end directly in its own namespace, in one request: both
    /// ends exist or neither does (`EEXIST` when a name is taken in either namespace).
    pub(crate) async fn add_veth(
        &self,
        first: &VethEnd<'_>,
        second: &VethEnd<'_>,
    ) -> Result<(), RtnlError> {
        let peer = end_attributes(LinkMessageBuilder::<LinkUnspec>::new(), second).build();
        let message = end_attributes(
            LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth),
            first,
        )
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| {
                RtnlError::from_netlink(
                    format!("create veth pair {}/{}", first.name, second.name),
                    e,
                )
            })
    }

    /// Tags link `index` with `alias` and sets it up, in one request.
    pub(crate) async fn tag_and_up(
        &self,
        index: u32,
        name: &str,
        alias: &str,
    ) -> Result<(), RtnlError> {
        let message = LinkUnspec::new_with_index(index).alias(alias).up().build();
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .map_err(|e| RtnlError::from_netlink(format!("tag {name} and set it up"), e))
    }

    /// Tags link `index` with `alias`, puts it in device group `group`, sets its MTU (if
    /// given) and sets it up, in one request: for a link another made (VPP's tap).
    pub(crate) async fn adopt(
        &self,
        index: u32,
        name: &str,
        alias: &str,
        group: u32,
        mtu: Option<u32>,
    ) -> Result<(), RtnlError> {
        let mut message = LinkUnspec::new_with_index(index)
            .alias(alias)
            .link_group(group);
        if let Some(mtu) = mtu {
            message = message.mtu(mtu);
        }
        self.handle
            .link()
            .change(message.up().build())
            .execute()
            .await
            .map_err(|e| {
                RtnlError::from_netlink(format!("tag {name}, set its MTU and set it up"), e)
            })
    }

    /// Turns ARP (and IPv6 neighbour discovery) off on link `index` (`IFF_NOARP`): the link
    /// then sends every frame to its own MAC, as to a point-to-point peer.
    pub(crate) async fn set_noarp(&self, index: u32, name: &str) -> Result<(), RtnlError> {
        let message = LinkUnspec::new_with_index(index).arp(false).build();
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .map_err(|e| RtnlError::from_netlink(format!("turn ARP off on {name}"), e))
    }

    pub(crate) async fn set_up(&self, index: u32, name: &str) -> Result<(), RtnlError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .map_err(|e| RtnlError::from_netlink(format!("set {name} up"), e))
    }

    pub(crate) async fn delete_link(&self, index: u32, name: &str) -> Result<(), RtnlError> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| RtnlError::from_netlink(format!("delete {name}"), e))
    }

    /// Adds an address (IPv6 without duplicate address detection, so it is usable at once:
    /// a vWire's two ends are the only ones on the wire).
    pub(crate) async fn add_address(
        &self,
        link: u32,
        ip: IpAddr,
        prefix_len: u8,
    ) -> Result<(), RtnlError> {
        let mut request = self.handle.address().add(link, ip, prefix_len);
        if ip.is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
        }
        request
            .execute()
            .await
            .map_err(|e| RtnlError::from_netlink(format!("add address {ip}/{prefix_len}"), e))
    }

    pub(crate) async fn add_route(&self, route: &NewRoute) -> Result<(), RtnlError> {
        let what = match route.gateway {
            Some(gateway) => format!("add route {}/{} via {gateway}", route.prefix, route.len),
            None => format!("add route {}/{}", route.prefix, route.len),
        };
        // The builder's error type is not exported; only its text is kept.
        let invalid = |reason: String| RtnlError::Transport {
            what: what.clone(),
            reason,
        };
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.prefix, route.len)
            .map_err(|e| invalid(e.to_string()))?
            .output_interface(route.link);
        builder = match route.gateway {
            Some(gateway) => builder
                .gateway(gateway)
                .map_err(|e| invalid(e.to_string()))?,
            None => builder.scope(RouteScope::Link),
        };
        self.handle
            .route()
            .add(builder.build())
            .execute()
            .await
            .map_err(|e| RtnlError::from_netlink(what.clone(), e))
    }
}

fn end_attributes(
    mut builder: LinkMessageBuilder<LinkUnspec>,
    end: &VethEnd<'_>,
) -> LinkMessageBuilder<LinkUnspec> {
    builder = builder
        .name(end.name)
        .setns_by_fd(end.netns.raw_fd())
        .link_group(end.group);
    if let Some(mtu) = end.mtu {
        builder = builder.mtu(mtu);
    }
    if let Some(mac) = end.mac {
        builder = builder.address(mac.to_vec());
    }
    builder
}
