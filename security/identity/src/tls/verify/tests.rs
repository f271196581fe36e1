use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;
use crate::throwaway::ThrowAwayTrustDomain;

const HOUR: Duration = Duration::from_secs(3600);

fn identity_of(ca: &ThrowAwayTrustDomain) -> Identity {
    let id = SpiffeId::from_parts(ca.trust_domain(), "/node/n1").unwrap();
    let issued = ca.issue(&id, HOUR).unwrap();
    Identity::new(issued.svid().unwrap(), ca.bundle().unwrap()).unwrap()
}

fn leaf(ca: &ThrowAwayTrustDomain, path: &str) -> CertificateDer<'static> {
    let id = SpiffeId::from_parts(ca.trust_domain(), path).unwrap();
    let issued = ca.issue(&id, HOUR).unwrap();
    CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()
}

/// Runs both verifiers (ours as client checking a server, ours as server checking a
/// client) on `cert`, and returns both outcomes as messages.
fn verify_both(identity: &Identity, cert: &CertificateDer<'_>) -> [Result<(), String>; 2] {
    let now = UnixTime::now();
    let name = ServerName::try_from("spiffe.invalid").unwrap();
    let as_server = SpiffeServerVerifier::new(identity.clone())
        .verify_server_cert(cert, &[], &name, &[], now)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let as_client = SpiffeClientVerifier::new(identity.clone())
        .verify_client_cert(cert, &[], now)
        .map(|_| ())
        .map_err(|e| e.to_string());
    [as_server, as_client]
}

fn assert_refused_with(outcomes: [Result<(), String>; 2], reason: &str) {
    for outcome in outcomes {
        let message = outcome.expect_err(reason);
        assert!(message.contains(reason), "{message:?} lacks {reason:?}");
    }
}

#[test]
fn an_svid_of_the_trust_domain_passes_both_verifiers() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let identity = identity_of(&ca);
    for outcome in verify_both(&identity, &leaf(&ca, "/client/c1")) {
        outcome.unwrap();
    }
}

#[test]
fn an_svid_of_another_trust_domain_is_named_as_such() {
    let ours = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let theirs = ThrowAwayTrustDomain::new("other.demo").unwrap();
    let outcomes = verify_both(&identity_of(&ours), &leaf(&theirs, "/client/c1"));
    assert_refused_with(
        outcomes,
        "is of trust domain other.demo, but only nsm-rs.demo",
    );
}

#[test]
fn an_svid_from_an_unknown_ca_of_the_same_name_is_an_unknown_issuer() {
    let ours = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let impostor = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let outcomes = verify_both(&identity_of(&ours), &leaf(&impostor, "/client/c1"));
    assert_refused_with(outcomes, "UnknownIssuer");
}

#[test]
fn an_expired_svid_is_refused_as_expired() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let id = SpiffeId::from_parts(ca.trust_domain(), "/client/old").unwrap();
    let now = SystemTime::now();
    let issued = ca
        .issue_valid_between(&id, now - 2 * HOUR, now - HOUR)
        .unwrap();
    let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    assert_refused_with(verify_both(&identity_of(&ca), &cert), "certificate expired");
}

#[test]
fn a_certificate_without_a_spiffe_id_is_refused_as_not_an_svid() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let issued = ca.issue_without_spiffe_id("client.example", HOUR).unwrap();
    let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    assert_refused_with(verify_both(&identity_of(&ca), &cert), "not an X.509-SVID");
}

#[test]
fn a_rotated_bundle_applies_to_the_next_verification() {
    let old_ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let new_ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let identity = identity_of(&old_ca);
    let client_verifier = SpiffeClientVerifier::new(identity.clone());
    let now = UnixTime::now();
    let old_leaf = leaf(&old_ca, "/client/c1");
    let new_leaf = leaf(&new_ca, "/client/c1");
    assert!(
        client_verifier
            .verify_client_cert(&old_leaf, &[], now)
            .is_ok()
    );

    let rotated = identity_of(&new_ca).current();
    let svid = rotated.svid.identity().clone();
    let reissued = new_ca.issue(&svid.spiffe_id, HOUR).unwrap();
    identity
        .replace(reissued.svid().unwrap(), new_ca.bundle().unwrap())
        .unwrap();
    assert!(
        client_verifier
            .verify_client_cert(&new_leaf, &[], now)
            .is_ok()
    );
    let refused = client_verifier.verify_client_cert(&old_leaf, &[], now);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");
}

#[test]
fn the_server_requires_a_client_certificate() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let verifier = SpiffeClientVerifier::new(identity_of(&ca));
    assert!(verifier.offer_client_auth());
    assert!(verifier.client_auth_mandatory());
}
