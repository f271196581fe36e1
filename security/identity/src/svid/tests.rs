use std::time::{Duration, SystemTime};

use super::*;
use crate::throwaway::ThrowAwayTrustDomain;

const HOUR: Duration = Duration::from_secs(3600);

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

#[test]
fn an_issued_svid_loads_with_its_id_expiry_and_public_key() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let issued = ca.issue(&id("spiffe://nsm-rs.demo/node/n1"), HOUR).unwrap();
    let svid = issued.svid().unwrap();
    assert_eq!(svid.spiffe_id(), &id("spiffe://nsm-rs.demo/node/n1"));
    let remaining = svid.not_after().duration_since(SystemTime::now()).unwrap();
    assert!(remaining > HOUR - Duration::from_secs(5) && remaining <= HOUR);
    assert_eq!(svid.chain().len(), 1);
    let peer = PeerIdentity::from_leaf(svid.leaf()).unwrap();
    assert_eq!(&peer, svid.identity());
    assert!(!peer.public_key.as_ref().is_empty());
}

#[test]
fn a_key_of_another_svid_is_refused_as_a_mismatch() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let a = ca.issue(&id("spiffe://nsm-rs.demo/a"), HOUR).unwrap();
    let b = ca.issue(&id("spiffe://nsm-rs.demo/b"), HOUR).unwrap();
    let error = Svid::from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(error, SvidError::KeyMismatch), "{error}");
    assert!(error.to_string().contains("does not match"));
}

#[test]
fn a_certificate_without_a_spiffe_id_is_not_an_svid() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let plain = ca.issue_without_spiffe_id("node.example", HOUR).unwrap();
    let error = plain.svid().unwrap_err();
    assert!(
        matches!(error, SvidError::Leaf(LeafError::NoSpiffeId)),
        "{error}"
    );
    assert!(error.to_string().contains("not an X.509-SVID"));
}

#[test]
fn a_ca_certificate_is_not_an_svid_leaf() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let root = CertificateDer::from_pem_slice(ca.bundle_pem().as_bytes()).unwrap();
    let error = PeerIdentity::from_leaf(&root).unwrap_err();
    assert!(matches!(error, LeafError::LeafIsCa(_)), "{error}");
}

#[test]
fn empty_or_half_written_pem_is_refused_with_the_reason() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let issued = ca.issue(&id("spiffe://nsm-rs.demo/a"), HOUR).unwrap();
    let key = issued.key_pem.as_bytes();
    assert!(matches!(
        Svid::from_pem(b"", key),
        Err(SvidError::NoCertificate)
    ));
    let half = &issued.cert_pem.as_bytes()[..issued.cert_pem.len() / 2];
    assert!(matches!(
        Svid::from_pem(half, key),
        Err(SvidError::CertificatePem(_))
    ));
    assert!(matches!(
        Svid::from_pem(issued.cert_pem.as_bytes(), b""),
        Err(SvidError::KeyPem(_))
    ));
}

#[test]
fn a_bundle_names_its_trust_domain_from_the_ca_id() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let bundle = TrustBundle::from_pem(ca.bundle_pem().as_bytes()).unwrap();
    assert_eq!(bundle.trust_domain().as_str(), "nsm-rs.demo");
    assert_eq!(bundle.roots().len(), 1);
    assert_eq!(bundle.root_store().len(), 1);
}

#[test]
fn a_bundle_of_another_trust_domain_is_refused() {
    let other = ThrowAwayTrustDomain::new("other.demo").unwrap();
    let expected = TrustDomain::new("nsm-rs.demo").unwrap();
    let error = TrustBundle::from_pem_for(expected, other.bundle_pem().as_bytes()).unwrap_err();
    assert!(
        matches!(error, BundleError::OtherTrustDomain { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("other.demo"));
}

#[test]
fn roots_of_two_trust_domains_in_one_bundle_are_refused() {
    let a = ThrowAwayTrustDomain::new("a.demo").unwrap();
    let b = ThrowAwayTrustDomain::new("b.demo").unwrap();
    let both = format!("{}{}", a.bundle_pem(), b.bundle_pem());
    assert!(matches!(
        TrustBundle::from_pem(both.as_bytes()),
        Err(BundleError::OtherTrustDomain { .. })
    ));
}

#[test]
fn an_empty_bundle_is_refused() {
    assert!(matches!(
        TrustBundle::from_pem(b""),
        Err(BundleError::Empty)
    ));
}
