//! The per-hop path tokens: ES256 JWTs each hop signs into its own path segment, as NSM
//! does.
//!
//! Claims: `sub` = the signer's SPIFFE ID, `aud` = the SPIFFE ID of the peer it calls
//! (from the peer's TLS certificate), `iat`, and `exp` = the earliest of now + the maximum
//! token lifetime, the signer's certificate expiry and the peer's certificate expiry (so a
//! token never outlives either certificate). Times are whole seconds, rounded down, so
//! `exp` never lies after a certificate expiry.
//!
//! Signing uses the SVID's own key, which must be EC P-256 (SPIRE's default and ours) in
//! PKCS#8 form; verifying takes the signer's public key from its certificate. `aud` is
//! written as a single string (as Go's JWT library writes a one-element audience) and read
//! as a string or an array.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use rustls_pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::spiffe_id::SpiffeId;
use crate::svid::Svid;

/// NSM's default maximum token lifetime.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Why a token could not be signed or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The key is not EC P-256, which ES256 needs: issue the SVID with a P-256 key.
    #[error("path tokens are ES256 and need an EC P-256 key; this {0}")]
    NotP256(String),
    /// The private key is not PKCS#8 (e.g. a SEC1 "EC PRIVATE KEY"): convert it with
    /// `openssl pkcs8 -topk8 -nocrypt`.
    #[error("path tokens need the SVID key in PKCS#8 form (\"PRIVATE KEY\"), not SEC1 or PKCS#1")]
    NotPkcs8,
    /// A certificate has already expired, so no token can be valid.
    #[error(
        "no token can be issued: the earliest certificate expiry ({expiry:?}) is not after now"
    )]
    NoLifetime { expiry: SystemTime },
    /// Signing failed inside the JWT library.
    #[error("cannot sign the token: {0}")]
    Signing(String),
    /// The string is not a well-formed JWT (three base64url parts, JSON header and claims).
    #[error("the token is not a JWT: {0}")]
    NotAJwt(String),
    /// The token is signed with another algorithm than ES256.
    #[error("the token is signed with {0}, but path tokens are ES256")]
    WrongAlgorithm(String),
    /// The signature does not verify with the given public key (forged, or signed by
    /// another identity).
    #[error("the token's signature does not verify with the peer's public key")]
    BadSignature,
    /// A claim is missing or malformed.
    #[error("the token's claims are invalid: {0}")]
    BadClaims(String),
    /// `exp` has passed.
    #[error("the token expired at {expired_at:?}")]
    Expired { expired_at: SystemTime },
}

/// The claims of a path token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathClaims {
    /// The signer's SPIFFE ID.
    pub sub: String,
    /// The SPIFFE IDs of the intended recipients (one, for the tokens we sign).
    #[serde(with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
}

impl PathClaims {
    /// `exp` as a time.
    pub fn expires(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

/// Signs a token for the hop from `own` to the peer `aud`, whose certificate expires at
/// `peer_not_after`. Returns the token and its expiry (for the segment's `expires`).
pub fn sign_path_token(
    own: &Svid,
    aud: &SpiffeId,
    peer_not_after: SystemTime,
    max_lifetime: Duration,
    now: SystemTime,
) -> Result<(String, SystemTime), TokenError> {
    require_p256(own.identity().public_key.as_ref())?;
    let PrivateKeyDer::Pkcs8(key) = own.private_key() else {
        return Err(TokenError::NotPkcs8);
    };
    let earliest = (now + max_lifetime)
        .min(own.not_after())
        .min(peer_not_after);
    let exp = unix_seconds(earliest);
    let iat = unix_seconds(now);
    if exp <= iat {
        return Err(TokenError::NoLifetime { expiry: earliest });
    }
    let claims = PathClaims {
        sub: own.spiffe_id().to_string(),
        aud: vec![aud.to_string()],
        exp,
        iat,
    };
    let key = EncodingKey::from_ec_der(key.secret_pkcs8_der());
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key)
        .map_err(|e| TokenError::Signing(e.to_string()))?;
    Ok((token, claims.expires()))
}

/// Verifies `token` with the signer's public key (DER SubjectPublicKeyInfo, e.g.
/// `PeerIdentity::public_key`) and checks it has not expired at `now`. The audience is
/// not checked here: which audience is right is the policies' decision.
pub fn verify_path_token(
    token: &str,
    public_key_spki_der: &[u8],
    now: SystemTime,
) -> Result<PathClaims, TokenError> {
    // Header (ES256 only) and claims, before any cryptography: garbage costs nothing.
    let claims = read_path_claims(token)?;
    let point = require_p256(public_key_spki_der)?;
    // ring, not jsonwebtoken's pure-Rust backend: the one signature check dominated an
    // authorization (327 µs of 406 µs p50 in `nsm bench authz`). A JWS ES256 signature is
    // r || s, 64 bytes, which is ring's FIXED encoding as is.
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| TokenError::NotAJwt("no signature part".into()))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| TokenError::NotAJwt(format!("the signature is not base64url: {e}")))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    if claims.exp <= unix_seconds(now) {
        return Err(TokenError::Expired {
            expired_at: claims.expires(),
        });
    }
    Ok(claims)
}

/// The claims of `token` WITHOUT checking its signature or expiry: for the segments of a
/// path whose signer's key this hop does not have (only the neighbouring hops' certificates
/// are known), whose claims the policies still chain. Never trust them on their own.
pub fn read_path_claims(token: &str) -> Result<PathClaims, TokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::NotAJwt(e.to_string()))?;
    if header.alg != Algorithm::ES256 {
        return Err(TokenError::WrongAlgorithm(format!("{:?}", header.alg)));
    }
    jsonwebtoken::dangerous::insecure_decode::<PathClaims>(token)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                TokenError::NotAJwt(e.to_string())
            }
            _ => TokenError::BadClaims(e.to_string()),
        })
}

/// Checks `spki_der` is an EC P-256 key and returns its point (SEC1 uncompressed).
fn require_p256(spki_der: &[u8]) -> Result<Vec<u8>, TokenError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| TokenError::NotP256(format!("public key does not parse: {e}")))?;
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(TokenError::NotP256(format!(
            "key is of algorithm {}",
            spki.algorithm.algorithm
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if curve.as_ref() != Some(&OID_EC_P256) {
        let named = curve.map_or_else(|| "no named curve".to_owned(), |c| c.to_id_string());
        return Err(TokenError::NotP256(format!("EC key is on curve {named}")));
    }
    Ok(spki.subject_public_key.data.to_vec())
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `aud` as RFC 7519 allows it: one string or an array of strings.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        aud: &[String],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => serializer.serialize_str(one),
            many => serializer.collect_seq(many),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

#[cfg(test)]
mod tests;
