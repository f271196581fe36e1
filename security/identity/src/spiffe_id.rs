//! SPIFFE IDs and trust domains, validated as the SPIFFE ID specification says
//! (`spiffe://<trust-domain>/<path>`).
//!
//! A value of [`SpiffeId`] or [`TrustDomain`] is always valid: the only ways to make one are
//! the parsers here, so code that holds one never re-checks it. The rules:
//!
//! - the scheme is exactly `spiffe://` (lowercase);
//! - the trust domain is non-empty and made of `a-z 0-9 . - _` (no uppercase, no port, no
//!   userinfo: those are the usual mistakes, and the error names them);
//! - the path is empty or `/segment(/segment)*`, each segment non-empty, of
//!   `a-z A-Z 0-9 . - _`, and neither `.` nor `..`; no trailing slash;
//! - no query and no fragment; at most 2048 bytes in all.

use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "spiffe://";
/// The specification's limit on a whole SPIFFE ID.
const MAX_ID_BYTES: usize = 2048;
/// The specification's limit on a trust domain name.
const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// Why a string is not a SPIFFE ID or trust domain. Each message quotes the input and says
/// what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The string does not begin with `spiffe://`: write the full ID, scheme included.
    #[error("{input:?} is not a SPIFFE ID: it must start with \"spiffe://\"")]
    WrongScheme { input: String },
    /// Nothing between `spiffe://` and the path: name the trust domain.
    #[error("{input:?} is not a SPIFFE ID: the trust domain is empty")]
    EmptyTrustDomain { input: String },
    /// The trust domain holds a character the specification forbids.
    #[error("{input:?}: the trust domain may hold only a-z 0-9 . - _, found {found:?}{hint}")]
    TrustDomainCharacter {
        input: String,
        found: char,
        hint: &'static str,
    },
    /// The trust domain is longer than the 255 bytes the specification allows.
    #[error("{input:?}: the trust domain is longer than 255 bytes")]
    TrustDomainTooLong { input: String },
    /// A path segment is empty (`//` inside the path, or a trailing `/`).
    #[error("{input:?}: the path has an empty segment (a doubled or trailing '/')")]
    EmptySegment { input: String },
    /// A path segment is `.` or `..`, which the specification forbids.
    #[error("{input:?}: the path may not contain the segment {segment:?}")]
    DotSegment { input: String, segment: String },
    /// A path segment holds a character outside `a-z A-Z 0-9 . - _`.
    #[error("{input:?}: path segments may hold only a-z A-Z 0-9 . - _, found {found:?}{hint}")]
    PathCharacter {
        input: String,
        found: char,
        hint: &'static str,
    },
    /// The whole ID is longer than the 2048 bytes the specification allows.
    #[error("SPIFFE ID of {len} bytes is longer than the 2048 the specification allows")]
    TooLong { len: usize },
}

/// A SPIFFE trust domain, e.g. `nsm-rs.demo` or `k8s.nsm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`). A `spiffe://example.org` form is
    /// accepted too, since bundles and flags use both.
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        let bare = name.strip_prefix(SCHEME).unwrap_or(name);
        validate_trust_domain(bare, name)?;
        Ok(Self(bare.to_owned()))
    }

    /// The name, without scheme.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own ID, `spiffe://<name>` (what a SPIRE CA carries as its URI SAN).
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            uri: format!("{SCHEME}{}", self.0),
            trust_domain_end: SCHEME.len() + self.0.len(),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A SPIFFE ID: `spiffe://<trust-domain>[/<path>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    uri: String,
    /// Byte offset where the trust domain ends and the path begins.
    trust_domain_end: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong { len: input.len() });
        }
        let rest = input
            .strip_prefix(SCHEME)
            .ok_or_else(|| SpiffeIdError::WrongScheme {
                input: input.to_owned(),
            })?;
        let (trust_domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        validate_trust_domain(trust_domain, input)?;
        validate_path(path, input)?;
        Ok(Self {
            uri: input.to_owned(),
            trust_domain_end: SCHEME.len() + trust_domain.len(),
        })
    }

    /// An ID in `trust_domain` with `path` (which must start with `/`, or be empty).
    pub fn from_parts(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!("{SCHEME}{trust_domain}{path}"))
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_str().to_owned())
    }

    /// The trust domain's name, without allocating.
    pub fn trust_domain_str(&self) -> &str {
        &self.uri[SCHEME.len()..self.trust_domain_end]
    }

    /// Whether this ID belongs to `trust_domain`.
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain_str() == trust_domain.as_str()
    }

    /// The path, `""` or starting with `/`.
    pub fn path(&self) -> &str {
        &self.uri[self.trust_domain_end..]
    }

    /// The whole ID as written.
    pub fn as_str(&self) -> &str {
        &self.uri
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn validate_trust_domain(name: &str, input: &str) -> Result<(), SpiffeIdError> {
    let input = || input.to_owned();
    if name.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain { input: input() });
    }
    if name.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeIdError::TrustDomainTooLong { input: input() });
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
    match name.chars().find(|c| !allowed(*c)) {
        None => Ok(()),
        Some(found) => Err(SpiffeIdError::TrustDomainCharacter {
            input: input(),
            found,
            hint: match found {
                ':' => " (a SPIFFE ID has no port)",
                '@' => " (a SPIFFE ID has no userinfo)",
                '?' => " (a SPIFFE ID has no query)",
                '#' => " (a SPIFFE ID has no fragment)",
                c if c.is_ascii_uppercase() => " (trust domains are lowercase)",
                _ => "",
            },
        }),
    }
}

fn validate_path(path: &str, input: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // `path` starts with '/', so the first split element is the empty string before it.
    for segment in path.split('/').skip(1) {
        if segment.is_empty() {
            return Err(SpiffeIdError::EmptySegment {
                input: input.to_owned(),
            });
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment {
                input: input.to_owned(),
                segment: segment.to_owned(),
            });
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_".contains(c);
        if let Some(found) = segment.chars().find(|c| !allowed(*c)) {
            return Err(SpiffeIdError::PathCharacter {
                input: input.to_owned(),
                found,
                hint: match found {
                    '?' => " (a SPIFFE ID has no query)",
                    '#' => " (a SPIFFE ID has no fragment)",
                    '%' => " (percent-encoding is not allowed)",
                    _ => "",
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_id_splits_into_trust_domain_and_path() {
        let id = SpiffeId::parse("spiffe://k8s.nsm/ns/default/pod/nsc-1_a").unwrap();
        assert_eq!(id.trust_domain().as_str(), "k8s.nsm");
        assert_eq!(id.path(), "/ns/default/pod/nsc-1_a");
        assert_eq!(id.to_string(), "spiffe://k8s.nsm/ns/default/pod/nsc-1_a");
        assert!(id.is_member_of(&TrustDomain::new("k8s.nsm").unwrap()));
        assert!(!id.is_member_of(&TrustDomain::new("other.nsm").unwrap()));
    }

    #[test]
    fn a_trust_domain_alone_is_an_id_with_an_empty_path() {
        let id = SpiffeId::parse("spiffe://nsm-rs.demo").unwrap();
        assert_eq!(id.path(), "");
        assert_eq!(TrustDomain::new("nsm-rs.demo").unwrap().id(), id);
        assert_eq!(
            TrustDomain::new("spiffe://nsm-rs.demo").unwrap().as_str(),
            "nsm-rs.demo"
        );
    }

    #[test]
    fn each_malformed_id_is_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("http://k8s.nsm/x", "must start with \"spiffe://\""),
            ("SPIFFE://k8s.nsm/x", "must start with \"spiffe://\""),
            ("spiffe:///x", "trust domain is empty"),
            ("spiffe://", "trust domain is empty"),
            ("spiffe://K8s.nsm/x", "trust domains are lowercase"),
            ("spiffe://k8s.nsm:8080/x", "no port"),
            ("spiffe://user@k8s.nsm/x", "no userinfo"),
            ("spiffe://k8s.nsm?x=1", "no query"),
            ("spiffe://k8s.nsm/x?y=1", "no query"),
            ("spiffe://k8s.nsm/x#frag", "no fragment"),
            ("spiffe://k8s.nsm/a//b", "empty segment"),
            ("spiffe://k8s.nsm/a/", "empty segment"),
            ("spiffe://k8s.nsm/", "empty segment"),
            ("spiffe://k8s.nsm/a/./b", "segment \".\""),
            ("spiffe://k8s.nsm/a/..", "segment \"..\""),
            ("spiffe://k8s.nsm/a%20b", "percent-encoding"),
            ("spiffe://k8s.nsm/a b", "found ' '"),
        ];
        for (input, reason) in cases {
            let error = SpiffeId::parse(input).expect_err(input).to_string();
            assert!(
                error.contains(reason),
                "{input}: {error:?} lacks {reason:?}"
            );
        }
    }

    #[test]
    fn overlong_ids_and_trust_domains_are_refused() {
        let long_path = format!("spiffe://a/{}", "x".repeat(MAX_ID_BYTES));
        assert!(matches!(
            SpiffeId::parse(&long_path),
            Err(SpiffeIdError::TooLong { .. })
        ));
        let long_domain = "a".repeat(MAX_TRUST_DOMAIN_BYTES + 1);
        assert!(matches!(
            TrustDomain::new(&long_domain),
            Err(SpiffeIdError::TrustDomainTooLong { .. })
        ));
    }

    #[test]
    fn from_parts_builds_an_id_in_the_trust_domain() {
        let td = TrustDomain::new("nsm-rs.demo").unwrap();
        let id = SpiffeId::from_parts(&td, "/node/n1").unwrap();
        assert_eq!(id.as_str(), "spiffe://nsm-rs.demo/node/n1");
        assert!(SpiffeId::from_parts(&td, "/node/../n1").is_err());
    }
}
