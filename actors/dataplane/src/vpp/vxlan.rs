//! VXLAN tunnels, the remote mechanism between forwarders on two nodes: NSM's sequence
//! (`add_node_next` so that decapsulated packets go to `ethernet-input`, then
//! `vxlan_add_del_tunnel_v3`), tagged like every other interface. Multi-node plumbing is a
//! later issue; this is the part that talks to VPP.

use std::net::IpAddr;

use nsm_domain::vwire::VWireId;
use nsm_vpp::api::{
    AddNodeNext, Address, SwInterfaceTagAddDel, VxlanAddDelTunnelV3, VxlanTunnelV2Details,
    VxlanTunnelV2Dump,
};
use nsm_vpp::client::Client;
use nsm_vpp::codec::FixedString;

use super::tag::VppTag;
use super::vpp_error;
use crate::contract::{DataplaneError, End};

/// VXLAN's IANA port.
pub const VXLAN_PORT: u16 = 4789;

/// One tunnel's key: VPP deletes a tunnel by the same fields it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanTunnel {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 24 bits.
    pub vni: u32,
}

/// VXLAN on one VPP session.
#[derive(Debug, Clone)]
pub struct Vxlan {
    client: Client,
    node: String,
}

impl Vxlan {
    pub(crate) fn new(client: Client, node: &str) -> Self {
        Self {
            client,
            node: node.to_owned(),
        }
    }

    fn request(tunnel: &VxlanTunnel, is_add: bool, decap_next_index: u32) -> VxlanAddDelTunnelV3 {
        VxlanAddDelTunnelV3 {
            is_add,
            instance: u32::MAX,
            src_address: Address::from(tunnel.src),
            dst_address: Address::from(tunnel.dst),
            src_port: VXLAN_PORT,
            dst_port: VXLAN_PORT,
            mcast_sw_if_index: u32::MAX,
            encap_vrf_id: 0,
            decap_next_index,
            vni: tunnel.vni,
            is_l3: false,
        }
    }

    /// Makes the tunnel for one end of a vWire, tagged with it; returns its `sw_if_index`.
    pub async fn create(
        &self,
        vwire: VWireId,
        end: End,
        tunnel: &VxlanTunnel,
    ) -> Result<u32, DataplaneError> {
        if tunnel.vni >= 1 << 24 || tunnel.src.is_ipv4() != tunnel.dst.is_ipv4() {
            return Err(DataplaneError::InvalidInput(format!(
                "VXLAN {} → {} VNI {}: the VNI is 24 bits and both addresses one family",
                tunnel.src, tunnel.dst, tunnel.vni
            )));
        }
        let input = if tunnel.src.is_ipv4() {
            "vxlan4-input"
        } else {
            "vxlan6-input"
        };
        let next = AddNodeNext {
            node_name: FixedString::new(input).expect("fits"),
            next_name: FixedString::new("ethernet-input").expect("fits"),
        };
        let next_index = self
            .client
            .request(&next)
            .await
            .map_err(vpp_error)?
            .next_index;
        let reply = self
            .client
            .request(&Self::request(tunnel, true, next_index))
            .await
            .map_err(vpp_error)?;
        let tag = VppTag::new(&self.node, vwire, end).to_string();
        let tagged = SwInterfaceTagAddDel {
            is_add: true,
            sw_if_index: reply.sw_if_index,
            tag: FixedString::new(tag.as_str()).expect("tags fit"),
        };
        if let Err(e) = self.client.request(&tagged).await {
            let _ = self.delete(tunnel).await;
            return Err(vpp_error(e));
        }
        Ok(reply.sw_if_index)
    }

    /// Deletes the tunnel with this key; a tunnel already gone is fine.
    pub async fn delete(&self, tunnel: &VxlanTunnel) -> Result<(), DataplaneError> {
        match self
            .client
            .request(&Self::request(tunnel, false, u32::MAX))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if super::is_gone(&e) => Ok(()),
            Err(e) => Err(vpp_error(e)),
        }
    }

    /// Every VXLAN tunnel VPP has.
    pub async fn list(&self) -> Result<Vec<VxlanTunnelV2Details>, DataplaneError> {
        let dump = VxlanTunnelV2Dump {
            sw_if_index: u32::MAX,
        };
        self.client.dump(&dump).await.map_err(vpp_error)
    }
}
