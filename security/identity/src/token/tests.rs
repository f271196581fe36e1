use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PublicKeyData};

use super::*;
use crate::throwaway::ThrowAwayTrustDomain;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

struct Hop {
    ca: ThrowAwayTrustDomain,
    own: Svid,
    peer: Svid,
}

fn hop() -> Hop {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let own = issue(&ca, "/nsc/c1", HOUR);
    let peer = issue(&ca, "/node/n1", HOUR);
    Hop { ca, own, peer }
}

fn issue(ca: &ThrowAwayTrustDomain, path: &str, lifetime: Duration) -> Svid {
    let id = SpiffeId::from_parts(ca.trust_domain(), path).unwrap();
    ca.issue(&id, lifetime).unwrap().svid().unwrap()
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds(time))
}

#[test]
fn a_signed_token_verifies_with_the_signers_certificate_key() {
    let Hop { own, peer, .. } = hop();
    let now = SystemTime::now();
    let (token, expires) =
        sign_path_token(&own, peer.spiffe_id(), peer.not_after(), 10 * MINUTE, now).unwrap();
    let claims = verify_path_token(&token, own.identity().public_key.as_ref(), now).unwrap();
    assert_eq!(claims.sub, "spiffe://nsm-rs.demo/nsc/c1");
    assert_eq!(claims.aud, ["spiffe://nsm-rs.demo/node/n1"]);
    assert_eq!(claims.iat, unix_seconds(now));
    assert_eq!(claims.expires(), expires);
    assert_eq!(expires, whole_seconds(now + 10 * MINUTE));
}

#[test]
fn expiry_is_the_earliest_of_lifetime_own_and_peer_certificate() {
    let Hop { ca, own, peer } = hop();
    let now = SystemTime::now();
    let short_own = issue(&ca, "/nsc/short", 5 * MINUTE);
    let (_, expires) = sign_path_token(
        &short_own,
        peer.spiffe_id(),
        peer.not_after(),
        10 * MINUTE,
        now,
    )
    .unwrap();
    assert_eq!(expires, whole_seconds(short_own.not_after()));

    let short_peer = issue(&ca, "/node/short", 3 * MINUTE);
    let (_, expires) = sign_path_token(
        &own,
        short_peer.spiffe_id(),
        short_peer.not_after(),
        10 * MINUTE,
        now,
    )
    .unwrap();
    assert_eq!(expires, whole_seconds(short_peer.not_after()));
}

#[test]
fn no_token_is_signed_past_a_certificate_expiry() {
    let Hop { own, peer, .. } = hop();
    let later = peer.not_after() + MINUTE;
    let error =
        sign_path_token(&own, peer.spiffe_id(), peer.not_after(), 10 * MINUTE, later).unwrap_err();
    assert!(matches!(error, TokenError::NoLifetime { .. }), "{error}");
}

#[test]
fn a_token_signed_by_another_key_is_a_bad_signature() {
    let Hop { ca, own, peer } = hop();
    let forger = issue(&ca, "/nsc/forger", HOUR);
    let now = SystemTime::now();
    let (forged, _) = sign_path_token(
        &forger,
        peer.spiffe_id(),
        peer.not_after(),
        10 * MINUTE,
        now,
    )
    .unwrap();
    let error = verify_path_token(&forged, own.identity().public_key.as_ref(), now).unwrap_err();
    assert_eq!(error, TokenError::BadSignature);
}

#[test]
fn an_expired_token_is_refused_with_its_expiry() {
    let Hop { own, peer, .. } = hop();
    let now = SystemTime::now();
    let (token, expires) =
        sign_path_token(&own, peer.spiffe_id(), peer.not_after(), MINUTE, now).unwrap();
    let error = verify_path_token(&token, own.identity().public_key.as_ref(), now + 2 * MINUTE)
        .unwrap_err();
    assert_eq!(
        error,
        TokenError::Expired {
            expired_at: expires
        }
    );
}

#[test]
fn garbage_is_not_a_jwt() {
    let Hop { own, .. } = hop();
    let key = own.identity().public_key.as_ref();
    for garbage in ["", "abc", "a.b.c", "not a token at all"] {
        let error = verify_path_token(garbage, key, SystemTime::now()).unwrap_err();
        assert!(
            matches!(error, TokenError::NotAJwt(_)),
            "{garbage:?}: {error}"
        );
    }
}

#[test]
fn a_token_of_another_algorithm_is_refused() {
    let Hop { own, .. } = hop();
    let claims = PathClaims {
        sub: "spiffe://nsm-rs.demo/nsc/c1".into(),
        aud: vec!["spiffe://nsm-rs.demo/node/n1".into()],
        exp: unix_seconds(SystemTime::now() + HOUR),
        iat: 0,
    };
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"shared secret"),
    )
    .unwrap();
    let error = verify_path_token(
        &hs256,
        own.identity().public_key.as_ref(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(error, TokenError::WrongAlgorithm("HS256".into()));
}

#[test]
fn keys_other_than_p256_are_refused_by_name() {
    let Hop { own, peer, .. } = hop();
    let now = SystemTime::now();
    let (token, _) =
        sign_path_token(&own, peer.spiffe_id(), peer.not_after(), MINUTE, now).unwrap();
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let error = verify_path_token(&token, &p384.subject_public_key_info(), now).unwrap_err();
    assert!(error.to_string().contains("curve 1.3.132.0.34"), "{error}");
    let ed25519 = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let error = verify_path_token(&token, &ed25519.subject_public_key_info(), now).unwrap_err();
    assert!(
        error.to_string().contains("algorithm 1.3.101.112"),
        "{error}"
    );
}

#[test]
fn audience_reads_as_a_string_or_an_array_and_writes_one_as_a_string() {
    let one: PathClaims = serde_json::from_str(r#"{"sub":"s","aud":"a","exp":2,"iat":1}"#).unwrap();
    let many: PathClaims =
        serde_json::from_str(r#"{"sub":"s","aud":["a","b"],"exp":2,"iat":1}"#).unwrap();
    assert_eq!(one.aud, ["a"]);
    assert_eq!(many.aud, ["a", "b"]);
    assert_eq!(
        serde_json::to_string(&one).unwrap(),
        r#"{"sub":"s","aud":"a","exp":2,"iat":1}"#
    );
}

#[test]
fn claims_are_read_without_the_signers_key_but_garbage_and_other_algorithms_are_not() {
    let Hop { own, peer, .. } = hop();
    let now = SystemTime::now();
    let (token, _) =
        sign_path_token(&own, peer.spiffe_id(), peer.not_after(), 10 * MINUTE, now).unwrap();
    let claims = read_path_claims(&token).unwrap();
    assert_eq!(claims.sub, "spiffe://nsm-rs.demo/nsc/c1");
    assert_eq!(claims.aud, ["spiffe://nsm-rs.demo/node/n1"]);
    assert!(matches!(
        read_path_claims("not.a.jwt"),
        Err(TokenError::NotAJwt(_))
    ));
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"shared"),
    )
    .unwrap();
    assert!(matches!(
        read_path_claims(&hs256),
        Err(TokenError::WrongAlgorithm(_))
    ));
}
