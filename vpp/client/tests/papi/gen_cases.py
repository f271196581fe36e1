#!/usr/bin/env python3
"""Writes cases.json, the inputs of nsm-vpp's conformance test (vpp/client/tests/papi_conformance.rs).

This file owns the choice of test values. For every message in MESSAGES it makes three cases
from the JSON definitions: "zero" (zeros, empty strings and lists), "distinct" (every field a
different value, its bytes counting up, so a swapped field or a wrong byte order shows) and
"max" (largest integers, strings of N-1 characters, long variable strings, several list
elements). Then come the hand-written cases: realistic values (IPv4 and IPv6 addresses and
prefixes, NSM's names) and values vpp_papi refuses ("refuse": true; the Rust codec must
refuse them too). Each case is checked against vpp_papi before it is written.

Run from anywhere: python3 vpp/client/tests/papi/gen_cases.py  (needs vpp_papi==2.4.2)
"""

import ipaddress
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from papi_codec import INTEGERS, Definitions, fields_of  # noqa: E402

APIDIR = os.path.join(HERE, "..", "..", "api")

# Every message nsm-vpp uses.
MESSAGES = """
sockclnt_create sockclnt_create_reply sockclnt_delete sockclnt_delete_reply
control_ping control_ping_reply show_version show_version_reply
sw_interface_dump sw_interface_details sw_interface_set_flags sw_interface_set_flags_reply
sw_interface_tag_add_del sw_interface_tag_add_del_reply
sw_interface_add_del_address sw_interface_add_del_address_reply
sw_interface_set_mtu sw_interface_set_mtu_reply sw_interface_set_rx_mode
sw_interface_set_rx_mode_reply want_interface_events want_interface_events_reply
sw_interface_event sw_interface_set_l2_xconnect sw_interface_set_l2_xconnect_reply
tap_create_v3 tap_create_v3_reply tap_delete_v2 tap_delete_v2_reply
sw_interface_tap_v2_dump sw_interface_tap_v2_details
af_packet_create_v3 af_packet_create_v3_reply af_packet_delete af_packet_delete_reply
af_packet_dump af_packet_details
memif_socket_filename_add_del_v2 memif_socket_filename_add_del_v2_reply
memif_create_v2 memif_create_v2_reply memif_delete memif_delete_reply memif_dump memif_details
vxlan_add_del_tunnel_v3 vxlan_add_del_tunnel_v3_reply vxlan_tunnel_v2_dump
vxlan_tunnel_v2_details add_node_next add_node_next_reply
l3xc_update l3xc_update_reply l3xc_del l3xc_del_reply l3xc_dump l3xc_details
ip_neighbor_add_del ip_neighbor_add_del_reply
l2_xconnect_dump l2_xconnect_details
memif_socket_filename_dump memif_socket_filename_details
""".split()

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
NOT_SET = 0xFFFFFFFF  # ~0: "any", "auto" or "none" for an index


class Values:
    """Field values of one mode: "zero", "distinct" or "max"."""

    def __init__(self, defs, mode):
        self.defs, self.mode = defs, mode
        self.next_byte = 0
        self.turn = 0  # for bools and enums in "distinct"

    def take(self, n):
        out = []
        for _ in range(n):
            self.next_byte = self.next_byte % 255 + 1
            out.append(self.next_byte)
        return out

    def text(self, name, limit):
        if self.mode == "zero":
            return ""
        if self.mode == "max":
            start = len(name) % len(PRINTABLE)
            return "".join(PRINTABLE[(start + i) % len(PRINTABLE)] for i in range(limit))
        self.turn += 1
        return ("%s-%d" % (name, self.turn))[:limit]

    def struct(self, fields):
        counts = {f.count for f in fields if f.count}
        return {f.name: self.field(f) for f in fields if f.name not in counts}

    def field(self, f):
        if f.type == "string":
            return self.text(f.name, f.length - 1 if f.length else 1500)
        if f.length is None:
            return self.value(f.type)
        n = f.length or {"zero": 0, "distinct": 2, "max": 4}[self.mode]
        return [self.value(f.type) for _ in range(n)]

    def value(self, t):
        d = self.defs
        if t in INTEGERS:
            low, high = INTEGERS[t]
            size = (high - low).bit_length() // 8
            if self.mode == "zero":
                return 0
            if self.mode == "max":
                return high if low == 0 else low
            return int.from_bytes(bytes(self.take(size)), "big", signed=low < 0)
        if t == "bool":
            self.turn += 1
            return self.mode == "max" or (self.mode == "distinct" and self.turn % 2 == 1)
        if t in d.enums:
            # Declared values only (26.06 lists enumflags among the enums too, so a flags
            # combination such as if_status_flags 3 is left to the hand-written cases).
            declared = sorted(e[1] for e in d.enums[t] if isinstance(e, list))
            if self.mode != "distinct":
                return declared[0] if self.mode == "zero" else declared[-1]
            self.turn += 1
            nonzero = [v for v in declared if v] or declared
            return nonzero[self.turn % len(nonzero)]
        if t in d.aliases:
            alias = d.aliases[t]
            if "length" in alias:
                return self.array(alias["type"], alias["length"])
            return self.value(alias["type"])
        if t in d.unions:
            return self.array("u8", max(size for _, size in d.union_arms(t)))
        return self.struct(fields_of(d.structs[t]))

    def array(self, t, n):
        if t == "u8":
            return {"zero": [0] * n, "max": [255] * n}.get(self.mode) or self.take(n)
        return [self.value(t) for _ in range(n)]


# Helpers for hand-written values.

def addr(text):
    ip = ipaddress.ip_address(text)
    return {"af": 0 if ip.version == 4 else 1, "un": list(ip.packed.ljust(16, b"\0"))}


def prefix(text):
    ip, length = text.split("/")
    return {"address": addr(ip), "len": int(length)}


def raw_prefix(text):
    """ip4_prefix / ip6_prefix: the address bytes alone and the length."""
    ip, length = text.split("/")
    return {"address": list(ipaddress.ip_address(ip).packed), "len": int(length)}


def mac(text):
    return [int(b, 16) for b in text.split(":")]


def label(value=0, ttl=0, exp=0, uniform=0):
    return {"is_uniform": uniform, "label": value, "ttl": ttl, "exp": exp}


def fib_path(sw_if_index, nh, proto, labels=(), **over):
    path = {
        "sw_if_index": sw_if_index, "table_id": 0, "rpf_id": 0, "weight": 1, "preference": 0,
        "type": 0, "flags": 0, "proto": proto,
        "nh": {"address": addr(nh)["un"], "via_label": 0x100000, "obj_id": NOT_SET,
               "classify_table_index": NOT_SET},
        "n_labels": len(labels),
        "label_stack": list(labels) + [label()] * (16 - len(labels)),
    }
    path.update(over)
    return path


def hand_cases():
    """(name, message, header, fields or overrides of the "distinct" fields, refuse)."""
    req = {"msg_id": 612, "client_index": 0x80000001, "context": 0x00C0FFEE}
    rep = {"msg_id": 613, "context": 0x00C0FFEE}
    tap = {
        "id": NOT_SET, "use_random_mac": True, "mac_address": [0] * 6, "num_rx_queues": 1,
        "num_tx_queues": 1, "tx_ring_sz": 256, "rx_ring_sz": 256, "host_mtu_set": True,
        "host_mtu_size": 1500, "host_mac_addr_set": True,
        "host_mac_addr": mac("02:fe:0a:0b:0c:0d"),
        "host_ip4_prefix_set": True, "host_ip4_prefix": raw_prefix("169.254.0.1/32"),
        "host_ip6_prefix_set": True, "host_ip6_prefix": raw_prefix("fd00:a:b::1/64"),
        "host_ip4_gw_set": True, "host_ip4_gw": [169, 254, 0, 254],
        "host_ip6_gw_set": False, "host_ip6_gw": [0] * 16, "tap_flags": 16,
        "host_namespace_set": True, "host_namespace": "/proc/4242/fd/17",
        "host_if_name_set": True, "host_if_name": "nsm-5f2a", "host_bridge_set": False,
        "host_bridge": "", "tag": "nsm connection 7f3e",
    }
    v4_path = fib_path(3, "10.0.0.2", 0, [label(100, 64, 1, 1), label(0xFFFFF, 255, 7)])
    v6_path = fib_path(4, "fd00::2", 1, [label(i + 16, i, i % 8) for i in range(16)], weight=7,
                       preference=2, type=8, flags=3, table_id=NOT_SET, rpf_id=9)
    l3xc = {"sw_if_index": 9, "is_ip6": False, "paths": [v4_path]}
    return [
        ("handshake", "sockclnt_create", {"msg_id": 15, "context": 0x1234}, {"name": "nsm-rs"}, 0),
        ("handshake reply", "sockclnt_create_reply",
         {"msg_id": 16, "client_index": 0, "context": 0x1234},
         {"response": 0, "index": 0x80000001, "message_table": [
             {"index": 23, "name": "control_ping_51077d14"},
             {"index": 812, "name": "sw_interface_dump_aa610c27"},
             {"index": 0xFFFF, "name": "memif_create_v2_8c7de5f7"}]}, 0),
        ("disconnect", "sockclnt_delete", req, {"index": 0x80000001}, 0),
        ("disconnect ok is 1", "sockclnt_delete_reply", rep, {"response": 1}, 0),
        ("disconnect unknown", "sockclnt_delete_reply", rep, {"response": -1}, 0),
        ("reply ignores client_index", "control_ping_reply",
         {"msg_id": 24, "client_index": 0xDEAD, "context": 7},
         {"retval": 0, "client_index": 0x80000001, "vpe_pid": 4242}, 0),
        ("version", "show_version_reply", rep,
         {"retval": 0, "program": "vpe", "version": "26.06-release",
          "build_date": "2026-06-24T10:00:00", "build_directory": "/w/workspace/vpp"}, 0),
        ("dump all", "sw_interface_dump", req,
         {"sw_if_index": NOT_SET, "name_filter_valid": False, "name_filter": ""}, 0),
        ("dump by name", "sw_interface_dump", req,
         {"sw_if_index": NOT_SET, "name_filter_valid": True, "name_filter": "memif"}, 0),
        ("memif details", "sw_interface_details", rep, {
            "sw_if_index": 1, "sup_sw_if_index": 1, "l2_address": mac("02:fe:12:34:56:78"),
            "flags": 3, "type": 0, "link_duplex": 2, "link_speed": 10000000, "link_mtu": 9000,
            "mtu": [9000, 0, 0, 0], "interface_name": "memif1/0",
            "interface_dev_type": "memif", "tag": ""}, 0),
        ("admin up", "sw_interface_set_flags", req, {"sw_if_index": 1, "flags": 1}, 0),
        ("tag of 64 chars", "sw_interface_tag_add_del", req,
         {"is_add": True, "sw_if_index": 1, "tag": "t" * 64}, 1),
        ("ipv4 address", "sw_interface_add_del_address", req,
         {"sw_if_index": 2, "is_add": True, "del_all": False, "prefix": prefix("10.0.0.1/24")}, 0),
        ("ipv6 address", "sw_interface_add_del_address", req,
         {"sw_if_index": 2, "is_add": False, "del_all": True,
          "prefix": prefix("fd00:1:2:3::1/64")}, 0),
        ("address of 17 bytes", "sw_interface_add_del_address", req,
         {"prefix": {"address": {"af": 1, "un": [1] * 17}, "len": 128}}, 1),
        ("l3 mtu", "sw_interface_set_mtu", req, {"sw_if_index": 2, "mtu": [1500, 0, 0, 0]}, 0),
        ("mtu of 3", "sw_interface_set_mtu", req, {"mtu": [1500, 0, 0]}, 1),
        ("rx interrupt", "sw_interface_set_rx_mode", req,
         {"sw_if_index": 2, "queue_id_valid": False, "queue_id": NOT_SET, "mode": 2}, 0),
        ("subscribe", "want_interface_events", req, {"enable_disable": 1, "pid": 31337}, 0),
        ("deleted event", "sw_interface_event",
         {"msg_id": 700, "client_index": 0x80000001, "context": 0},
         {"pid": 31337, "sw_if_index": 5, "flags": 3, "deleted": True}, 0),
        ("xconnect", "sw_interface_set_l2_xconnect", req,
         {"rx_sw_if_index": 5, "tx_sw_if_index": 6, "enable": True}, 0),
        ("tun for nsm", "tap_create_v3", req, tap, 0),
        ("tap without tag", "tap_create_v3", req, dict(tap, tag=""), 0),
        ("tap long tag", "tap_create_v3", req, dict(tap, tag=PRINTABLE * 4), 0),
        ("tap tab and newline", "tap_create_v3", req, dict(tap, tag="a\tb\nc\\\"d"), 0),
        ("tap namespace of 64", "tap_create_v3", req, dict(tap, host_namespace="n" * 64), 1),
        ("tap mac of 7", "tap_create_v3", req, dict(tap, host_mac_addr=[1] * 7), 1),
        ("retval beyond i32", "tap_create_v3_reply", rep, {"retval": 2**31, "sw_if_index": 1}, 1),
        ("tap failed", "tap_create_v3_reply", rep, {"retval": -11, "sw_if_index": NOT_SET}, 0),
        ("tap dump all", "sw_interface_tap_v2_dump", req, {"sw_if_index": NOT_SET}, 0),
        ("tap details", "sw_interface_tap_v2_details", rep, {
            "sw_if_index": 3, "id": 0, "tx_ring_sz": 256, "rx_ring_sz": 256,
            "host_mtu_size": 1500, "host_mac_addr": mac("02:fe:0a:0b:0c:0d"),
            "host_ip4_prefix": raw_prefix("169.254.0.1/32"),
            "host_ip6_prefix": raw_prefix("fd00:a:b::1/64"), "tap_flags": 16,
            "dev_name": "tap0", "host_if_name": "nsm-5f2a",
            "host_namespace": "/proc/4242/fd/17", "host_bridge": ""}, 0),
        ("veth end", "af_packet_create_v3", req, {
            "mode": 1, "hw_addr": [0] * 6, "use_random_hw_addr": True,
            "host_if_name": "nsm-veth-0", "rx_frame_size": 2048, "tx_frame_size": 2048,
            "rx_frames_per_block": 32, "tx_frames_per_block": 32, "flags": 8,
            "num_rx_queues": 1, "num_tx_queues": 1}, 0),
        ("veth gone", "af_packet_delete", req, {"host_if_name": "nsm-veth-0"}, 0),
        ("af_packet details", "af_packet_details", rep,
         {"sw_if_index": 4, "host_if_name": "nsm-veth-0"}, 0),
        ("memif socket auto id", "memif_socket_filename_add_del_v2", req, {
            "is_add": True, "socket_id": NOT_SET,
            "socket_filename": "abstract:nsm/memif-1.sock,netns_name=/proc/4242/ns/net"}, 0),
        ("memif socket delete", "memif_socket_filename_add_del_v2", req,
         {"is_add": False, "socket_id": 1196435762, "socket_filename": ""}, 0),
        ("memif socket id", "memif_socket_filename_add_del_v2_reply", rep,
         {"retval": 0, "socket_id": 1196435762}, 0),
        ("memif slave ip", "memif_create_v2", req, {
            "role": 1, "mode": 1, "rx_queues": 1, "tx_queues": 1, "id": 0, "socket_id": 1,
            "ring_size": 1024, "buffer_size": 2048, "no_zero_copy": False, "use_dma": False,
            "hw_addr": [0] * 6, "secret": "s" * 23}, 0),
        ("memif secret of 24", "memif_create_v2", req, {"secret": "s" * 24}, 1),
        ("buffer_size beyond u16", "memif_create_v2", req, {"buffer_size": 65536}, 1),
        ("rx_queues beyond u8", "memif_create_v2", req, {"rx_queues": 256}, 1),
        ("negative sw_if_index", "memif_delete", req, {"sw_if_index": -1}, 1),
        ("memif details", "memif_details", rep, {
            "sw_if_index": 1, "hw_addr": mac("02:fe:a1:b2:c3:d4"), "id": 0, "role": 1,
            "mode": 1, "zero_copy": True, "socket_id": 1, "ring_size": 1024,
            "buffer_size": 2048, "flags": 3, "if_name": "memif1/0"}, 0),
        ("vxlan ipv4", "vxlan_add_del_tunnel_v3", req, {
            "is_add": True, "instance": NOT_SET, "src_address": addr("192.168.1.10"),
            "dst_address": addr("192.168.1.20"), "src_port": 4789, "dst_port": 4789,
            "mcast_sw_if_index": NOT_SET, "encap_vrf_id": 0, "decap_next_index": 2,
            "vni": 0xFFFFFF, "is_l3": False}, 0),
        ("vxlan ipv6", "vxlan_add_del_tunnel_v3", req, {
            "is_add": False, "instance": 3, "src_address": addr("2001:db8::a"),
            "dst_address": addr("2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"), "src_port": 0,
            "dst_port": 0xFFFF, "mcast_sw_if_index": NOT_SET, "encap_vrf_id": 12,
            "decap_next_index": NOT_SET, "vni": 1, "is_l3": True}, 0),
        ("vxlan details ipv6", "vxlan_tunnel_v2_details", rep, {
            "sw_if_index": 7, "instance": 0, "src_address": addr("fd00::1"),
            "dst_address": addr("fd00::2"), "src_port": 4789, "dst_port": 4789,
            "mcast_sw_if_index": NOT_SET, "encap_vrf_id": 0, "decap_next_index": 2, "vni": 42},
         0),
        ("vxlan next", "add_node_next", req,
         {"node_name": "vxlan4-input", "next_name": "ethernet-input"}, 0),
        ("l3xc no paths", "l3xc_update", req, {"l3xc": dict(l3xc, paths=[])}, 0),
        ("l3xc ipv4 labelled", "l3xc_update", req, {"l3xc": l3xc}, 0),
        ("l3xc two paths", "l3xc_update", req,
         {"l3xc": dict(l3xc, is_ip6=True, paths=[v6_path, v4_path])}, 0),
        ("l3xc 15 labels", "l3xc_update", req,
         {"l3xc": dict(l3xc, paths=[dict(v4_path, label_stack=[label()] * 15)])}, 1),
        ("l3xc 256 paths", "l3xc_update", req, {"l3xc": dict(l3xc, paths=[v4_path] * 256)}, 1),
        ("l3xc details", "l3xc_details", rep,
         {"l3xc": dict(l3xc, is_ip6=True, paths=[v6_path, v6_path])}, 0),
        ("l3xc del v6", "l3xc_del", req, {"sw_if_index": 9, "is_ip6": True}, 0),
    ]


def generated_cases(defs):
    cases = []
    headers = {
        "zero": lambda i: {"msg_id": 0, "client_index": 0, "context": 0},
        "distinct": lambda i: {"msg_id": 0x100 + i, "client_index": 0x80000000 + i,
                               "context": 0x0C000000 + i},
        "max": lambda i: {"msg_id": 0xFFFF, "client_index": 0xFFFFFFFF, "context": 0xFFFFFFFF},
    }
    for i, message in enumerate(MESSAGES):
        _, body = defs.split(message)
        for mode, header in headers.items():
            cases.append({"name": mode, "message": message, "header": header(i),
                          "fields": Values(defs, mode).struct(body)})
    return cases


def main():
    defs = Definitions(APIDIR)
    cases = generated_cases(defs)
    distinct = {c["message"]: c["fields"] for c in cases if c["name"] == "distinct"}
    for name, message, header, fields, refuse in hand_cases():
        _, body = defs.split(message)
        complete = {f.name for f in body} - {f.count for f in body if f.count}
        if set(fields) != complete:  # overrides of the "distinct" case
            fields = dict(distinct[message], **fields)
        case = {"name": name, "message": message, "header": header, "fields": fields}
        if refuse:
            case["refuse"] = True
        cases.append(case)
    check(cases)
    with open(os.path.join(HERE, "cases.json"), "w") as out:
        out.write('{"cases": [\n')
        out.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        out.write("\n]}\n")
    print("wrote %d cases" % len(cases))


def check(cases):
    """Every case is accepted by vpp_papi, and decodes to itself, unless it says "refuse"."""
    request = json.dumps({"apidir": APIDIR, "cases": cases})
    run = subprocess.run([sys.executable, os.path.join(HERE, "papi_codec.py")],
                         input=request, capture_output=True, text=True, check=True)
    for case, result in zip(cases, json.loads(run.stdout)["results"]):
        what = "%s %r" % (case["message"], case["name"])
        if case.get("refuse"):
            assert "error" in result, "%s: vpp_papi accepted it" % what
        else:
            assert "error" not in result, "%s: %s" % (what, result["error"])
            assert result["decoded"] == case["fields"], "%s decodes differently" % what


if __name__ == "__main__":
    main()
