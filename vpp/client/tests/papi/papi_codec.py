#!/usr/bin/env python3
"""The reference half of nsm-vpp's conformance test (vpp/client/tests/papi_conformance.rs).

This file owns the translation between the crate's canonical JSON values (see
papi_conformance.rs) and what vpp_papi, the reference Python client, takes and returns. The
bytes and the decoded values are vpp_papi's own: its loader (VPPApiJSONFiles) reads the same
.api.json files the Rust generator reads, and its serializer (VPPMessage.pack / unpack) does
all encoding and decoding. Nothing here encodes a field.

stdin:  {"apidir": DIR, "cases": [{"message": NAME, "header": {...}, "fields": {...}}, ...]}
stdout: {"results": [RESULT, ...]}, one RESULT per case, in order:
        {"hex": WHOLE_MESSAGE_HEX, "header": {"msg_id", "client_index", "context"},
         "shape": [header fields the message has], "decoded": CANONICAL_FIELDS}
     or {"error": WHY} when vpp_papi (or the canonical form itself) refuses the value.
A malformed case (unknown message, a missing or unexpected field) is a bug in the test, not
a value to refuse: the script then exits with status 2 and says why on stderr.

vpp_papi converts some values when unpacking (IPv4Address, MACAddress, prefixes); the
unpack here passes ntc=True ("no type conversion"), so it returns raw bytes, ints and
namedtuples, which map one to one onto the canonical form.
"""

import glob
import json
import os
import sys

from vpp_papi.vpp_papi import VPPApiJSONFiles

# A message's leading fields that the Rust side carries in its Header, by JSON name.
HEADER_FIELDS = {"_vl_msg_id": "msg_id", "client_index": "client_index", "context": "context"}
INTEGERS = {
    "u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1),
    "i8": (-(2**7), 2**7 - 1), "i16": (-(2**15), 2**15 - 1),
    "i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1),
}


class CaseError(Exception):
    """The case itself is malformed (a test bug)."""


class Refused(Exception):
    """The value has no vpp_papi input: the canonical form is violated."""


class Field:
    """One `[type, name, (length), (count_field), {options}]` entry of a definition."""

    def __init__(self, entry):
        parts = [x for x in entry if not isinstance(x, dict)]
        self.type, self.name = parts[0], parts[1]
        self.length = parts[2] if len(parts) > 2 else None
        self.count = parts[3] if len(parts) > 3 else None


def fields_of(definition):
    return [Field(x) for x in definition if isinstance(x, list)]


class Definitions:
    """The JSON definitions, read on their own (vpp_papi's loader rewrites the lists it reads)."""

    def __init__(self, apidir):
        self.structs, self.unions, self.enums, self.aliases, self.messages = {}, {}, {}, {}, {}
        for path in sorted(glob.glob(os.path.join(apidir, "*.api.json"))):
            with open(path) as f:
                api = json.load(f)
            for kind, table in (("types", self.structs), ("unions", self.unions),
                                ("enums", self.enums), ("enumflags", self.enums)):
                for t in api.get(kind, []):
                    table["vl_api_%s_t" % t[0]] = t[1:]
            for name, alias in api.get("aliases", {}).items():
                self.aliases["vl_api_%s_t" % name] = alias
            for m in api.get("messages", []):
                self.messages[m[0]] = fields_of(m[1:])

    def split(self, message):
        """A message's header fields (its leading run of HEADER_FIELDS) and its body fields."""
        if message not in self.messages:
            raise CaseError("no message %r in the JSON definitions" % message)
        fields = self.messages[message]
        n = 0
        while n < len(fields) and fields[n].name in HEADER_FIELDS:
            n += 1
        return fields[:n], fields[n:]

    def u8_array_size(self, type_name):
        """N when the type is an alias of u8[N], else None."""
        alias = self.aliases.get(type_name)
        if alias and alias["type"] == "u8" and alias.get("length"):
            return alias["length"]
        return None

    def union_arms(self, type_name):
        """A union's (arm name, size) pairs, each arm an alias of a u8 array."""
        arms = []
        for f in fields_of(self.unions[type_name]):
            size = self.u8_array_size(f.type)
            if size is None or f.length is not None:
                raise CaseError("union %s arm %s is not a u8 array alias" % (type_name, f.name))
            arms.append((f.name, size))
        return arms

    # canonical -> vpp_papi input

    def to_papi_fields(self, fields, obj, where):
        if not isinstance(obj, dict):
            raise Refused("%s: expected an object, got %r" % (where, obj))
        counts = {f.count for f in fields if f.count}
        expected = {f.name for f in fields} - counts
        if set(obj) != expected:
            raise CaseError("%s: fields %s missing, %s unexpected" % (
                where, sorted(expected - set(obj)), sorted(set(obj) - expected)))
        out = {}
        for f in fields:
            if f.name in counts:
                continue
            out[f.name] = self.to_papi_field(f, obj[f.name], "%s.%s" % (where, f.name))
            if f.count:
                out[f.count] = len(obj[f.name])
        return out

    def to_papi_field(self, f, value, where):
        if f.type == "string":
            if not isinstance(value, str):
                raise Refused("%s: expected a string, got %r" % (where, value))
            return value
        if f.length is None:
            return self.to_papi(f.type, value, where)
        if not isinstance(value, list):
            raise Refused("%s: expected a list, got %r" % (where, value))
        if f.type == "u8":
            # vpp_papi pads a short u8[N] with zeros, which the canonical form does not allow
            # (a longer one it refuses itself).
            if f.length and len(value) < f.length:
                raise Refused("%s: needs %d bytes, got %d" % (where, f.length, len(value)))
            return to_bytes(value, where)
        return [self.to_papi(f.type, v, "%s[%d]" % (where, i)) for i, v in enumerate(value)]

    def to_papi(self, type_name, value, where):
        if type_name in INTEGERS or type_name in self.enums:
            if type(value) is not int:
                raise Refused("%s: expected an integer, got %r" % (where, value))
            return value
        if type_name == "bool":
            if type(value) is not bool:
                raise Refused("%s: expected true or false, got %r" % (where, value))
            return value
        if type_name == "f64":
            if type(value) not in (int, float):
                raise Refused("%s: expected a number, got %r" % (where, value))
            return float(value)
        if type_name in self.aliases:
            alias = self.aliases[type_name]
            if "length" in alias:
                return self.to_papi_field(Field([alias["type"], where, alias["length"]]), value,
                                          where)
            return self.to_papi(alias["type"], value, where)
        if type_name in self.unions:
            return self.union_to_papi(type_name, value, where)
        if type_name in self.structs:
            return self.to_papi_fields(fields_of(self.structs[type_name]), value, where)
        raise CaseError("%s: unknown type %s" % (where, type_name))

    def union_to_papi(self, type_name, value, where):
        """The smallest arm that holds every non-zero byte, so that vpp_papi does the padding
        (an IPv4 address goes in as the 4-byte ip4 arm). A list longer than the union goes to
        the largest arm, for vpp_papi to refuse; a shorter one is not canonical."""
        if not isinstance(value, list):
            raise Refused("%s: expected a list of bytes, got %r" % (where, value))
        raw = to_bytes(value, where)
        arms = sorted(self.union_arms(type_name), key=lambda arm: arm[1])
        if len(raw) != arms[-1][1]:
            if len(raw) < arms[-1][1]:
                raise Refused("%s: needs %d bytes, got %d" % (where, arms[-1][1], len(raw)))
            return {arms[-1][0]: raw}
        used = len(raw.rstrip(b"\0"))
        name, size = next(arm for arm in arms if used <= arm[1])
        return {name: raw[:size]}

    # vpp_papi output -> canonical

    def from_papi_fields(self, fields, values):
        counts = {f.count for f in fields if f.count}
        return {f.name: self.from_papi_field(f, v)
                for f, v in zip(fields, values) if f.name not in counts}

    def from_papi_field(self, f, value):
        if f.type == "string":
            return value
        if f.length is None:
            return self.from_papi(f.type, value)
        if f.type == "u8":
            return list(value)
        return [self.from_papi(f.type, v) for v in value]

    def from_papi(self, type_name, value):
        if type_name in INTEGERS or type_name in self.enums:
            return int(value)
        if type_name == "bool":
            return bool(value)
        if type_name == "f64":
            return float(value)
        if type_name in self.aliases:
            alias = self.aliases[type_name]
            if "length" in alias:
                return self.from_papi_field(Field([alias["type"], "", alias["length"]]), value)
            return self.from_papi(alias["type"], value)
        if type_name in self.unions:
            # Every arm is decoded from the same offset; the largest one is all the bytes.
            sizes = [size for _, size in self.union_arms(type_name)]
            return list(value[sizes.index(max(sizes))])
        return self.from_papi_fields(fields_of(self.structs[type_name]), value)


def to_bytes(values, where):
    if not all(type(v) is int and 0 <= v <= 255 for v in values):
        raise Refused("%s: expected bytes (0..255), got %r" % (where, values))
    return bytes(values)


def describe(error):
    """An exception and its causes, innermost (the real reason) first. vpp_papi wraps a
    failure once per struct level ("Exception while packing {...} for l3xc_update.l3xc.");
    of those wrappers only the field is kept."""
    parts = []
    while error is not None:
        text = str(error)
        if text.startswith("Exception while packing") and " for " in text:
            text = "in " + text.rsplit(" for ", 1)[1]
        parts.append("%s: %s" % (type(error).__name__, text[:200]))
        error = error.__cause__ or error.__context__
    return " <- ".join(reversed(parts))


def run_case(defs, papi_messages, case):
    name = case["message"]
    header_fields, body_fields = defs.split(name)
    header = case.get("header", {})
    try:
        data = defs.to_papi_fields(body_fields, case["fields"], name)
    except Refused as why:
        return {"error": "canonical form: %s" % why}
    for f in header_fields:
        data[f.name] = header.get(HEADER_FIELDS[f.name], 0)
    try:
        raw = papi_messages[name].pack(data)
    except Exception as error:  # vpp_papi wraps most failures in VPPSerializerValueError
        return {"error": "vpp_papi: %s" % describe(error)}
    unpacked, _ = papi_messages[name].unpack(raw, 0, None, True)  # ntc: raw values
    n = len(header_fields)
    decoded_header = {key: 0 for key in HEADER_FIELDS.values()}
    for f, v in zip(header_fields, unpacked[:n]):
        decoded_header[HEADER_FIELDS[f.name]] = int(v)
    return {
        "hex": raw.hex(),
        "header": decoded_header,
        "shape": [HEADER_FIELDS[f.name] for f in header_fields],
        "decoded": defs.from_papi_fields(body_fields, unpacked[n:]),
    }


def main():
    request = json.load(sys.stdin)
    defs = Definitions(request["apidir"])
    apifiles = sorted(glob.glob(os.path.join(request["apidir"], "*.api.json")))
    _, papi_messages, _ = VPPApiJSONFiles.load_api(apifiles=apifiles)
    results = []
    for i, case in enumerate(request["cases"]):
        try:
            results.append(run_case(defs, papi_messages, case))
        except (CaseError, KeyError) as why:
            print("papi_codec: malformed case %d (%s): %s" % (i, case.get("name"), why),
                  file=sys.stderr)
            return 2
    json.dump({"results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
