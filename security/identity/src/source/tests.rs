use std::time::Duration;

use super::*;
use crate::throwaway::{IssuedSvid, ThrowAwayTrustDomain};

const HOUR: Duration = Duration::from_secs(3600);
const POLL: Duration = Duration::from_millis(20);

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn issue(ca: &ThrowAwayTrustDomain, path: &str) -> IssuedSvid {
    let id = SpiffeId::from_parts(ca.trust_domain(), path).unwrap();
    ca.issue(&id, HOUR).unwrap()
}

#[test]
fn identity_refuses_a_bundle_of_another_trust_domain() {
    let ours = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let theirs = ThrowAwayTrustDomain::new("other.demo").unwrap();
    let svid = issue(&ours, "/n1").svid().unwrap();
    let error = Identity::new(svid, theirs.bundle().unwrap()).unwrap_err();
    assert!(error.to_string().contains("other.demo"), "{error}");
}

#[test]
fn replace_publishes_to_current_and_changes() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let first = issue(&ca, "/n1");
    let identity = Identity::new(first.svid().unwrap(), ca.bundle().unwrap()).unwrap();
    let mut changes = identity.changes();
    assert!(!changes.has_changed().unwrap());
    let second = issue(&ca, "/n2");
    identity
        .replace(second.svid().unwrap(), ca.bundle().unwrap())
        .unwrap();
    assert!(changes.has_changed().unwrap());
    let seen = changes.borrow_and_update().clone();
    assert_eq!(seen.svid.spiffe_id(), &id("spiffe://nsm-rs.demo/n2"));
    assert_eq!(identity.current().svid.spiffe_id(), seen.svid.spiffe_id());
}

#[tokio::test]
async fn start_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let mut files = issue(&ca, "/n1").write_files(dir.path(), "n1").unwrap();
    files.key = dir.path().join("absent.key.pem");
    let error = FileSource::start(files, POLL)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("SVID key file"), "{error}");
    assert!(error.contains("absent.key.pem"), "{error}");
}

#[tokio::test]
async fn start_refuses_a_key_of_another_svid() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let mut files = issue(&ca, "/n1").write_files(dir.path(), "n1").unwrap();
    files.key = issue(&ca, "/n2").write_files(dir.path(), "n2").unwrap().key;
    let error = FileSource::start(files, POLL)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not match"), "{error}");
    assert!(error.contains("n1.cert.pem"), "{error}");
}

#[tokio::test]
async fn start_refuses_a_certificate_that_is_not_an_svid() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let plain = ca.issue_without_spiffe_id("node.example", HOUR).unwrap();
    let files = plain.write_files(dir.path(), "plain").unwrap();
    let error = FileSource::start(files, POLL)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not an X.509-SVID"), "{error}");
}

#[tokio::test]
async fn start_refuses_a_bundle_of_another_trust_domain() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let theirs = ThrowAwayTrustDomain::new("other.demo").unwrap();
    let mut files = issue(&ours, "/n1").write_files(dir.path(), "n1").unwrap();
    files.bundle = issue(&theirs, "/x")
        .write_files(dir.path(), "x")
        .unwrap()
        .bundle;
    let error = FileSource::start(files, POLL)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("x.bundle.pem"), "{error}");
    assert!(error.contains("other.demo"), "{error}");
}

#[tokio::test]
async fn a_rotation_on_disk_reaches_the_identity_and_a_half_written_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let files = issue(&ca, "/n1").write_files(dir.path(), "node").unwrap();
    let source = FileSource::start(files.clone(), POLL).await.unwrap();
    let identity = source.identity();
    let mut changes = identity.changes();

    // A half-written certificate: the old identity stays through several polls.
    let rotated = issue(&ca, "/n1-rotated");
    std::fs::write(&files.cert, &rotated.cert_pem[..rotated.cert_pem.len() / 2]).unwrap();
    tokio::time::sleep(POLL * 10).await;
    assert!(!changes.has_changed().unwrap());
    assert_eq!(
        identity.current().svid.spiffe_id(),
        &id("spiffe://nsm-rs.demo/n1")
    );

    // The writer finishes (key, then the whole certificate): the new SVID is swapped in.
    std::fs::write(&files.key, &rotated.key_pem).unwrap();
    std::fs::write(&files.cert, &rotated.cert_pem).unwrap();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the rotated files are picked up within 5 s")
        .unwrap();
    assert_eq!(
        identity.current().svid.spiffe_id(),
        &id("spiffe://nsm-rs.demo/n1-rotated")
    );
}

#[tokio::test]
async fn a_file_that_disappears_keeps_the_identity_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let files = issue(&ca, "/n1").write_files(dir.path(), "node").unwrap();
    let source = FileSource::start(files.clone(), POLL).await.unwrap();
    let mut changes = source.identity().changes();

    std::fs::remove_file(&files.bundle).unwrap();
    tokio::time::sleep(POLL * 5).await;
    assert!(!changes.has_changed().unwrap());

    std::fs::write(&files.bundle, ca.bundle_pem()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the restored bundle is picked up within 5 s")
        .unwrap();
}
