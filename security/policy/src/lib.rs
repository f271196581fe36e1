//! Authorization: given who calls (the SPIFFE ID from its TLS certificate), what it asks,
//! and the path it carries (segments with their tokens), say allow, or deny naming the
//! policy that failed and why. The policies are Rego, evaluated with regorus: NSM's
//! defaults, written here with their semantics, plus a per-Network-Service allow list.
