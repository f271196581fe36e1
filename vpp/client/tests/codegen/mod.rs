//! The generator of `vpp/client/src/api.rs`: reads VPP's JSON definitions vendored in `vpp/client/api/`
//! and writes the Rust type of every message the crate uses, with everything they need
//! (aliases, enums, flags, unions, structs), each with its wire encoding.
//!
//! It runs as a test (`generated_api.rs`): the test fails when the checked-in file differs
//! from what the JSON says, and `NSM_VPP_REGENERATE=1` rewrites it. The list of messages is
//! [`WANTED`]; replies, dump details and events come with their requests through the JSON's
//! `services`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// The requests (and events) the crate speaks; their replies follow from `services`.
pub(crate) const WANTED: &[&str] = &[
    // memclnt: the session
    "sockclnt_create",
    "sockclnt_delete",
    "control_ping",
    // vpe / vlib
    "show_version",
    "add_node_next",
    // interface
    "sw_interface_dump",
    "sw_interface_set_flags",
    "sw_interface_tag_add_del",
    "sw_interface_add_del_address",
    "sw_interface_set_mtu",
    "sw_interface_set_rx_mode",
    "want_interface_events",
    // l2
    "sw_interface_set_l2_xconnect",
    "l2_xconnect_dump",
    // tapv2
    "tap_create_v3",
    "tap_delete_v2",
    "sw_interface_tap_v2_dump",
    // af_packet
    "af_packet_create_v3",
    "af_packet_delete",
    "af_packet_dump",
    // memif
    "memif_socket_filename_add_del_v2",
    "memif_create_v2",
    "memif_delete",
    "memif_dump",
    "memif_socket_filename_dump",
    // vxlan
    "vxlan_add_del_tunnel_v3",
    "vxlan_tunnel_v2_dump",
    // l3xc
    "l3xc_update",
    "l3xc_del",
    "l3xc_dump",
    // ip_neighbor: the static neighbour an IP vWire's Ethernet end sends to
    "ip_neighbor_add_del",
];

const HEADER_FIELDS: [&str; 3] = ["_vl_msg_id", "client_index", "context"];

/// How many fields open a message as its header: the leading run of header names (a body
/// may have a field of the same name later, as `control_ping_reply.client_index` does).
fn header_len(fields: &[Field]) -> usize {
    fields
        .iter()
        .take_while(|f| HEADER_FIELDS.contains(&f.name.as_str()))
        .count()
}

/// One field of a struct or message as the JSON gives it.
#[derive(Debug, Clone)]
struct Field {
    vpp_type: String,
    name: String,
    /// `None`: one value; `Some(n)`: a fixed array (n > 0) or a variable one (0).
    length: Option<u64>,
    count_field: Option<String>,
    default: Option<Value>,
}

/// An enum or flags type: its wire type, its named values, and whether it is flags.
type EnumDef = (String, Vec<(String, u64)>, bool);

#[derive(Debug, Default)]
struct Definitions {
    /// struct types and messages by name, with the module they came from
    types: BTreeMap<String, Vec<Field>>,
    messages: BTreeMap<String, (String, Vec<Field>, u32)>,
    unions: BTreeMap<String, Vec<Field>>,
    enums: BTreeMap<String, EnumDef>,
    aliases: BTreeMap<String, (String, Option<u64>)>,
    /// request → (reply, is a stream), and request → events it subscribes to
    services: BTreeMap<String, (String, bool)>,
    events: BTreeMap<String, Vec<String>>,
}

fn fields(items: &[Value]) -> Vec<Field> {
    items
        .iter()
        .filter_map(Value::as_array)
        .map(|f| {
            let text = |i: usize| f.get(i).and_then(Value::as_str).map(str::to_owned);
            Field {
                vpp_type: text(0).expect("field type"),
                name: text(1).expect("field name"),
                length: f.get(2).and_then(Value::as_u64),
                count_field: text(3),
                default: f.iter().find_map(|o| o.get("default")).cloned(),
            }
        })
        .collect()
}

fn load(dir: &Path) -> Definitions {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("vpp/api")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".api.json"))
        .collect();
    files.sort();
    let mut defs = Definitions::default();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let module: Value = serde_json::from_str(&text).expect("json");
        let module_name = module["module"].as_str().expect("module").to_owned();
        for t in module["types"].as_array().into_iter().flatten() {
            let t = t.as_array().expect("type");
            let name = t[0].as_str().expect("type name").to_owned();
            defs.types.insert(name, fields(&t[1..]));
        }
        for u in module["unions"].as_array().into_iter().flatten() {
            let u = u.as_array().expect("union");
            defs.unions
                .insert(u[0].as_str().expect("name").to_owned(), fields(&u[1..]));
        }
        for (key, flags) in [("enums", false), ("enumflags", true)] {
            for e in module[key].as_array().into_iter().flatten() {
                let e = e.as_array().expect("enum");
                let mut repr = "u32".to_owned();
                let mut values = Vec::new();
                for item in &e[1..] {
                    match item {
                        Value::Array(v) => values.push((
                            v[0].as_str().expect("name").to_owned(),
                            v[1].as_u64().expect("value"),
                        )),
                        Value::Object(o) => {
                            if let Some(t) = o.get("enumtype").and_then(Value::as_str) {
                                repr = t.to_owned();
                            }
                        }
                        _ => panic!("enum item {item}"),
                    }
                }
                let name = e[0].as_str().expect("name").to_owned();
                defs.enums.insert(name, (repr, values, flags));
            }
        }
        for (name, alias) in module["aliases"].as_object().into_iter().flatten() {
            let base = alias["type"].as_str().expect("alias type").to_owned();
            defs.aliases.insert(
                name.clone(),
                (base, alias.get("length").and_then(Value::as_u64)),
            );
        }
        for m in module["messages"].as_array().into_iter().flatten() {
            let m = m.as_array().expect("message");
            let name = m[0].as_str().expect("name").to_owned();
            let crc = m.last().and_then(|o| o["crc"].as_str()).expect("crc");
            let crc = u32::from_str_radix(crc.trim_start_matches("0x"), 16).expect("crc hex");
            defs.messages
                .insert(name, (module_name.clone(), fields(&m[1..]), crc));
        }
        for (request, service) in module["services"].as_object().into_iter().flatten() {
            let reply = service["reply"].as_str().expect("reply").to_owned();
            let stream = service.get("stream").and_then(Value::as_bool) == Some(true);
            defs.services.insert(request.clone(), (reply, stream));
            if let Some(events) = service.get("events").and_then(Value::as_array) {
                let names = events.iter().filter_map(Value::as_str).map(str::to_owned);
                defs.events.insert(request.clone(), names.collect());
            }
        }
    }
    defs
}

fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn field_ident(name: &str) -> String {
    match name {
        "type" | "mod" | "ref" | "match" | "in" | "fn" | "loop" | "move" | "use" => {
            format!("r#{name}")
        }
        _ => name.to_owned(),
    }
}

/// `vl_api_foo_t` → `foo`; base types stay as they are.
fn bare(vpp_type: &str) -> &str {
    vpp_type
        .strip_prefix("vl_api_")
        .and_then(|t| t.strip_suffix("_t"))
        .unwrap_or(vpp_type)
}

const BASE: &[(&str, &str, u64)] = &[
    ("u8", "u8", 1),
    ("u16", "u16", 2),
    ("u32", "u32", 4),
    ("u64", "u64", 8),
    ("i8", "i8", 1),
    ("i16", "i16", 2),
    ("i32", "i32", 4),
    ("i64", "i64", 8),
    ("f64", "f64", 8),
    ("bool", "bool", 1),
];

fn base(vpp_type: &str) -> Option<(&'static str, u64)> {
    BASE.iter()
        .find(|(name, _, _)| *name == vpp_type)
        .map(|(_, rust, size)| (*rust, *size))
}

impl Definitions {
    fn rust_type(&self, vpp_type: &str) -> String {
        match base(vpp_type) {
            Some((rust, _)) => rust.to_owned(),
            None => camel(bare(vpp_type)),
        }
    }

    fn size(&self, vpp_type: &str) -> u64 {
        let name = bare(vpp_type);
        if let Some((_, size)) = base(name) {
            return size;
        }
        if let Some((repr, _, _)) = self.enums.get(name) {
            return base(repr).expect("enum repr").1;
        }
        if let Some((target, length)) = self.aliases.get(name) {
            return self.size(target) * length.unwrap_or(1);
        }
        if let Some(members) = self.unions.get(name) {
            return members
                .iter()
                .map(|m| self.field_size(m))
                .max()
                .unwrap_or(0);
        }
        let fields = self
            .types
            .get(name)
            .unwrap_or_else(|| panic!("type {name}"));
        fields.iter().map(|f| self.field_size(f)).sum()
    }

    fn field_size(&self, field: &Field) -> u64 {
        match field.length {
            Some(0) => panic!("{} has no fixed size", field.name),
            Some(n) if field.vpp_type == "string" => n,
            Some(n) => n * self.size(&field.vpp_type),
            None => self.size(&field.vpp_type),
        }
    }

    /// Every named type `vpp_type` needs, itself included, depth first.
    fn collect(&self, vpp_type: &str, into: &mut BTreeSet<String>) {
        let name = bare(vpp_type).to_owned();
        if base(&name).is_some() || name == "string" || !into.insert(name.clone()) {
            return;
        }
        if let Some((target, _)) = self.aliases.get(&name) {
            self.collect(&target.clone(), into);
        }
        let nested = self.types.get(&name).or_else(|| self.unions.get(&name));
        for field in nested.into_iter().flatten() {
            self.collect(&field.vpp_type, into);
        }
    }
}

/// The whole of `api.rs`.
pub(crate) fn generate(api_dir: &Path) -> String {
    let defs = load(api_dir);
    let mut messages = BTreeSet::new();
    for request in WANTED {
        assert!(defs.messages.contains_key(*request), "no message {request}");
        messages.insert(request.to_string());
        if let Some((reply, _)) = defs.services.get(*request) {
            messages.insert(reply.clone());
        }
        for event in defs.events.get(*request).into_iter().flatten() {
            messages.insert(event.clone());
        }
    }
    let mut types = BTreeSet::new();
    for message in &messages {
        for field in &defs.messages[message].1 {
            defs.collect(&field.vpp_type, &mut types);
        }
    }

    let mut out = String::new();
    out.push_str(HEADER);
    for name in &types {
        if let Some((target, length)) = defs.aliases.get(name) {
            emit_alias(&mut out, &defs, name, target, *length);
        } else if let Some((repr, values, flags)) = defs.enums.get(name) {
            emit_enum(&mut out, name, repr, values, *flags);
        } else if defs.unions.contains_key(name) {
            emit_union(&mut out, &defs, name);
        } else {
            let fields = &defs.types[name];
            emit_struct(&mut out, &defs, name, fields, None);
        }
    }
    for name in &messages {
        let (module, fields, crc) = &defs.messages[name];
        emit_struct(&mut out, &defs, name, fields, Some((module, *crc)));
        emit_message(&mut out, &defs, name, fields, *crc);
    }
    emit_table(&mut out, &messages);
    out
}

const HEADER: &str = "\
// @generated by `vpp/client/tests/codegen` from VPP 26.06's JSON definitions in `vpp/client/api/`.
// Do not edit: change the generator or the JSON, then run
// `NSM_VPP_REGENERATE=1 cargo test -p nsm-vpp --test generated_api`.

//! The messages this crate speaks and the types they use, generated from VPP's JSON
//! definitions: one Rust type per VPP type, field names as VPP spells them, every message
//! with its name, CRC, header shape and (for requests) reply. Enums are open newtypes with
//! a constant per known value, so a value from a newer VPP decodes instead of failing.

#![allow(clippy::all, unused_variables)]

use serde::{Deserialize, Serialize};

use crate::codec::{self, Decode, DecodeError, Encode, EncodeError, FixedString, Reader, VarString};
use crate::message::{Dump, Event, Message, MessageInfo, Request, Shape};
";

fn emit_alias(out: &mut String, defs: &Definitions, name: &str, target: &str, len: Option<u64>) {
    let rust = defs.rust_type(target);
    let _ = writeln!(out, "\n/// `vl_api_{name}_t`");
    match len {
        Some(n) => {
            let _ = writeln!(out, "pub type {} = [{rust}; {n}];", camel(name));
        }
        None => {
            let _ = writeln!(out, "pub type {} = {rust};", camel(name));
        }
    }
}

fn emit_enum(out: &mut String, name: &str, repr: &str, values: &[(String, u64)], flags: bool) {
    let ty = camel(name);
    let kind = if flags { "flags" } else { "enum" };
    let _ = writeln!(
        out,
        "\n/// `vl_api_{name}_t` ({kind}, {repr} on the wire)\n\
         #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]\n\
         #[serde(transparent)]\n\
         pub struct {ty}(pub {repr});\n\nimpl {ty} {{"
    );
    for (value_name, value) in values {
        let _ = writeln!(out, "    pub const {value_name}: Self = Self({value});");
    }
    if flags {
        let _ = writeln!(
            out,
            "\n    /// Whether every bit of `other` is set.\n    \
             pub fn contains(self, other: Self) -> bool {{\n        self.0 & other.0 == other.0\n    }}"
        );
    }
    let _ = writeln!(out, "}}");
    if flags {
        let _ = writeln!(
            out,
            "\nimpl std::ops::BitOr for {ty} {{\n    type Output = Self;\n    \
             fn bitor(self, other: Self) -> Self {{\n        Self(self.0 | other.0)\n    }}\n}}"
        );
    }
    emit_newtype_codec(out, &ty);
}

fn emit_newtype_codec(out: &mut String, ty: &str) {
    let _ = writeln!(
        out,
        "\nimpl Encode for {ty} {{\n    \
         fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {{\n        self.0.encode(out)\n    }}\n}}\n\n\
         impl Decode for {ty} {{\n    \
         fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {{\n        Decode::decode(reader).map(Self)\n    }}\n}}"
    );
}

fn emit_union(out: &mut String, defs: &Definitions, name: &str) {
    let ty = camel(name);
    let size = defs.size(name);
    let members: Vec<String> = defs.unions[name]
        .iter()
        .map(|m| format!("`{}`", m.name))
        .collect();
    let _ = writeln!(
        out,
        "\n/// `vl_api_{name}_t`: a union of {}, kept as its {size} raw bytes (a shorter member \
         takes the first bytes, the rest are zero).\n\
         #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]\n\
         #[serde(transparent)]\n\
         pub struct {ty}(pub [u8; {size}]);",
        members.join(", ")
    );
    emit_newtype_codec(out, &ty);
}

/// The Rust type of a field, with the serde attribute it needs.
fn field_type(defs: &Definitions, field: &Field) -> String {
    match (field.length, field.vpp_type.as_str()) {
        (Some(0), "string") => "VarString".to_owned(),
        (Some(n), "string") => format!("FixedString<{n}>"),
        (Some(0), t) => {
            assert!(field.count_field.is_some(), "{} has no count", field.name);
            format!("Vec<{}>", defs.rust_type(t))
        }
        (Some(n), t) => {
            assert!(n <= 32, "{}: arrays over 32 need serde help", field.name);
            format!("[{}; {n}]", defs.rust_type(t))
        }
        (None, t) => defs.rust_type(t),
    }
}

fn default_value(field: &Field) -> Option<String> {
    match field.default.as_ref()? {
        Value::String(s) if s == "true" || s == "false" => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn emit_struct(
    out: &mut String,
    defs: &Definitions,
    name: &str,
    all: &[Field],
    message: Option<(&String, u32)>,
) {
    let ty = camel(name);
    let header_len = match message {
        Some(_) => header_len(all),
        None => 0,
    };
    let body: Vec<&Field> = all[header_len..].iter().collect();
    let counts: BTreeMap<&str, &str> = body
        .iter()
        .filter_map(|f| Some((f.count_field.as_deref()?, f.name.as_str())))
        .collect();
    let shown: Vec<&&Field> = body
        .iter()
        .filter(|f| !counts.contains_key(f.name.as_str()))
        .collect();
    match message {
        Some((module, crc)) => {
            let _ = writeln!(out, "\n/// `{name}` (module `{module}`, CRC `{crc:#010x}`)");
        }
        None => {
            let _ = writeln!(out, "\n/// `vl_api_{name}_t`");
        }
    }
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\n\
         #[serde(default, deny_unknown_fields)]\npub struct {ty} {{"
    );
    for field in &shown {
        let _ = writeln!(
            out,
            "    pub {}: {},",
            field_ident(&field.name),
            field_type(defs, field)
        );
    }
    let _ = writeln!(
        out,
        "}}\n\nimpl Default for {ty} {{\n    fn default() -> Self {{\n        Self {{"
    );
    for field in &shown {
        let value = default_value(field).unwrap_or_else(|| "Default::default()".to_owned());
        let _ = writeln!(out, "            {}: {value},", field_ident(&field.name));
    }
    let _ = writeln!(out, "        }}\n    }}\n}}");

    // Encode: every body field in order; a count field writes its list's length.
    let _ = writeln!(
        out,
        "\nimpl Encode for {ty} {{\n    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {{"
    );
    for field in &body {
        let ident = field_ident(&field.name);
        if let Some(list) = counts.get(field.name.as_str()) {
            let count_ty = defs.rust_type(&field.vpp_type);
            let list_ident = field_ident(list);
            let _ = writeln!(
                out,
                "        codec::count_of::<{count_ty}>(\"{name}.{list}\", self.{list_ident}.len(), {count_ty}::MAX as u64)?.encode(out)?;"
            );
        } else if field.length == Some(0) && field.vpp_type != "string" {
            let _ = writeln!(out, "        codec::encode_elements(&self.{ident}, out)?;");
        } else {
            let _ = writeln!(out, "        self.{ident}.encode(out)?;");
        }
    }
    let _ = writeln!(out, "        Ok(())\n    }}\n}}");

    // Decode: counts into locals, then the lists that use them.
    let _ = writeln!(
        out,
        "\nimpl Decode for {ty} {{\n    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {{"
    );
    for field in &body {
        let local = format!("f_{}", field.name);
        if field.length == Some(0) && field.vpp_type != "string" {
            let count = field.count_field.as_deref().expect("count");
            let _ = writeln!(
                out,
                "        let {local} = codec::decode_elements(reader, f_{count} as usize, \"{name}.{}\")?;",
                field.name
            );
        } else {
            let _ = writeln!(out, "        let {local} = Decode::decode(reader)?;");
        }
    }
    for field in body.iter().filter(|f| counts.contains_key(f.name.as_str())) {
        let _ = writeln!(
            out,
            "        let _: {} = f_{};",
            defs.rust_type(&field.vpp_type),
            field.name
        );
    }
    let _ = writeln!(out, "        Ok(Self {{");
    for field in &shown {
        let _ = writeln!(
            out,
            "            {}: f_{},",
            field_ident(&field.name),
            field.name
        );
    }
    let _ = writeln!(out, "        }})\n    }}\n}}");
}

fn emit_message(out: &mut String, defs: &Definitions, name: &str, fields: &[Field], crc: u32) {
    let ty = camel(name);
    let has = |n: &str| fields[..header_len(fields)].iter().any(|f| f.name == n);
    let retval = fields
        .get(header_len(fields))
        .is_some_and(|f| f.name == "retval" && f.vpp_type == "i32");
    let _ = writeln!(
        out,
        "\nimpl Message for {ty} {{\n    const NAME: &'static str = \"{name}\";\n    \
         const CRC: u32 = {crc:#010x};\n    \
         const SHAPE: Shape = Shape {{ client_index: {}, context: {} }};",
        has("client_index"),
        has("context")
    );
    if retval {
        let _ = writeln!(
            out,
            "\n    fn retval(&self) -> Option<i32> {{\n        Some(self.retval)\n    }}"
        );
    }
    let _ = writeln!(out, "}}");
    if let Some((reply, stream)) = defs.services.get(name) {
        let reply_ty = camel(reply);
        if *stream {
            let _ = writeln!(
                out,
                "\nimpl Dump for {ty} {{\n    type Details = {reply_ty};\n}}"
            );
        } else if reply != "null" {
            let _ = writeln!(
                out,
                "\nimpl Request for {ty} {{\n    type Reply = {reply_ty};\n}}"
            );
        }
    }
    if defs.events.values().flatten().any(|e| e == name) {
        let _ = writeln!(out, "\nimpl Event for {ty} {{}}");
    }
}

fn emit_table(out: &mut String, messages: &BTreeSet<String>) {
    let _ = writeln!(
        out,
        "\n/// Every message above, for lookups by name (CRC checks, JSON encoding).\n\
         pub static MESSAGES: &[MessageInfo] = &["
    );
    for name in messages {
        let _ = writeln!(out, "    MessageInfo::of::<{}>(),", camel(name));
    }
    let _ = writeln!(out, "];");
}
