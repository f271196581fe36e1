//! Who this process is and who it talks to: SPIFFE X.509-SVIDs (from files, re-read when
//! they change, or from the SPIFFE Workload API), the trust bundle they are checked
//! against, mutual TLS for every gRPC listener and call (rustls, unix sockets included),
//! and the ES256 tokens each hop signs into its path segment.
//!
//! It knows nothing of the mesh's model: who may do what is `nsm-policy`'s to decide.
