//! Client tokens (JWT, HS256 only) and the host's service key: minting, verifying, comparing in
//! constant time. Knows nothing of HTTP.
//!
//! Verification is the `jsonwebtoken` crate's (algorithm, `crit`, `exp`, `nbf`, leeway), on a
//! crypto provider of our own that knows HS256 alone: a token naming any other algorithm has no
//! way in, and no RSA or elliptic-curve code is built.

use std::sync::Once;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind, Result as JwtResult};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::Deserialize;
use sha2::Sha256;

use crate::model::{Profile, UserId};

type HmacSha256 = Hmac<Sha256>;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The user the token speaks for (`sub`).
    pub user: UserId,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Profile fields to store for the user, if the token carries them.
    pub profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Header {
    alg: serde_json::Value,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<UserId>,
    exp: Option<f64>,
    profile: Option<Profile>,
}

/// HMAC-SHA256 keyed with the token secret: both the signer and the verifier of the provider.
struct Hs256(HmacSha256);

impl Hs256 {
    fn new(alg: &Algorithm, key: &[u8]) -> JwtResult<Box<Hs256>> {
        if *alg != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        let mac = HmacSha256::new_from_slice(key).map_err(|_| ErrorKind::InvalidKeyFormat)?;
        Ok(Box::new(Hs256(mac)))
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant time.
        mac.verify_slice(sig).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: |alg, key| Ok(Hs256::new(alg, key.as_bytes())?),
    verifier_factory: |alg, key| Ok(Hs256::new(alg, key.try_get_as_bytes()?)?),
    // JWKs (the only users of these) are never read.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs the HS256 provider once per process, before the first token is made or read.
fn provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if HS256_ONLY.install_default().is_err() {
            tracing::warn!("another JWT crypto provider was installed first");
        }
    });
}

fn sign(secret: &str, signing_input: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A token for `user` that expires `ttl` seconds from now.
pub fn mint(secret: &str, user: &UserId, ttl: u64) -> String {
    let exp = crate::time::now_ms() / 1000 + ttl as i64;
    mint_claims(
        secret,
        &serde_json::json!({"sub": user.as_str(), "exp": exp}),
    )
}

/// A token with arbitrary claims (used by `mint` and by tests that need odd tokens).
pub fn mint_claims(secret: &str, claims: &serde_json::Value) -> String {
    provider();
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("HMAC takes any key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), claims, &key)
        .expect("HS256 signs any claims")
}

/// Verifies signature, algorithm, `crit`, expiry and `nbf` against the clock, each time with
/// `leeway_s` seconds of tolerance for clocks that disagree. The error says what is wrong.
pub fn verify(secret: &str, token: &str, leeway_s: u64) -> Result<Claims, String> {
    provider();
    if token.split('.').count() != 3 {
        return Err("token is not a JWT (three dot-separated parts)".into());
    }
    // The library checks the algorithm too; reading it first names it in the message.
    let header: Header = token
        .split('.')
        .next()
        .and_then(|h| B64.decode(h).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("token header is not base64url JSON with an alg")?;
    if header.alg != "HS256" {
        return Err(format!(
            "token algorithm {} is not accepted; use HS256",
            crate::error::short(&header.alg.to_string())
        ));
    }
    let key = DecodingKey::from_secret(secret.as_bytes()).expect("HMAC takes any key");
    let mut rules = Validation::new(Algorithm::HS256);
    rules.leeway = leeway_s;
    rules.validate_nbf = true;
    // `sub` may be a JSON number (read as its decimal string), so it is checked below.
    rules.set_required_spec_claims(&["exp"]);
    // Chinwag is the only audience of its tokens; an `aud` a host adds is not refused.
    rules.validate_aud = false;
    let raw: RawClaims = jsonwebtoken::decode(token, &key, &rules)
        .map_err(explain)?
        .claims;
    let user = raw.sub.ok_or("token has no sub claim")?;
    let exp = raw.exp.ok_or("token has no exp claim")? as i64;
    Ok(Claims {
        user,
        exp,
        profile: raw.profile,
    })
}

/// The library's verdict in the words of our error messages.
fn explain(e: JwtError) -> String {
    match e.kind() {
        ErrorKind::InvalidSignature => "token signature does not match".into(),
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf is in the future)".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("token has no {c} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("token claim {c} is not a number"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "token algorithm is not accepted; use HS256".into()
        }
        ErrorKind::InvalidToken => {
            "token header is not accepted (a crit extension this server does not know, or b64)"
                .into()
        }
        ErrorKind::Base64(_) => "token is not base64url (its claims or signature)".into(),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "token claims are not valid (sub must be a user id, exp a number)".into()
        }
        other => format!("token is not valid: {other:?}"),
    }
}

/// The server's two secrets: the key client tokens are signed with and the host's service key.
pub struct Keys {
    secret: String,
    service_key: String,
}

impl Keys {
    pub fn new(secret: String, service_key: String) -> Keys {
        Keys {
            secret,
            service_key,
        }
    }

    /// Verifies a client token (see [`verify`]).
    pub fn verify(&self, token: &str, leeway_s: u64) -> Result<Claims, String> {
        verify(&self.secret, token, leeway_s)
    }

    /// A client token for `user` valid for `ttl` seconds, and its expiry (Unix seconds).
    pub fn mint(&self, user: &UserId, ttl: u64) -> (String, i64) {
        let token = mint(&self.secret, user, ttl);
        (token, crate::time::now_ms() / 1000 + ttl as i64)
    }

    /// A client token with `claims` as they are (`sub`, `exp`, a `profile`…).
    pub fn mint_claims(&self, claims: &serde_json::Value) -> String {
        mint_claims(&self.secret, claims)
    }

    /// Whether `presented` is the host backend's service key (compared in constant time).
    pub fn is_service_key(&self, presented: &str) -> bool {
        service_key_matches(&self.service_key, presented)
    }
}

/// Compares a presented service key with the real one in constant time.
pub fn service_key_matches(expected: &str, presented: &str) -> bool {
    // Comparing MACs of both keeps the time independent of where they differ and of their lengths.
    let a = sign("chinwag-service-key", expected);
    let b = sign("chinwag-service-key", presented);
    a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "s3cret";
    const LEEWAY: u64 = 30;

    fn now() -> i64 {
        crate::time::now_ms() / 1000
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    /// A token with `header` as given, signed HS256 under SECRET.
    fn with_header(header: &str, claims: serde_json::Value) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims.to_string()));
        format!("{input}.{}", B64.encode(sign(SECRET, &input)))
    }

    #[test]
    fn minted_tokens_verify() {
        let t = mint(SECRET, &user("42"), 60);
        let c = verify(SECRET, &t, LEEWAY).unwrap();
        assert_eq!(c.user, user("42"));
    }

    #[test]
    fn numeric_sub_and_profile_are_read() {
        let t = mint_claims(
            SECRET,
            &json!({"sub": 7, "exp": now() + 10, "profile": {"firstName": "Ann", "email": "a@x"}}),
        );
        let c = verify(SECRET, &t, LEEWAY).unwrap();
        assert_eq!(c.user, user("7"));
        let p = c.profile.unwrap();
        assert_eq!(p.first_name.as_deref(), Some("Ann"));
        assert_eq!(p.email.as_deref(), Some("a@x"));
    }

    #[test]
    fn expiry_and_nbf_allow_the_leeway_and_no_more() {
        let cases = [
            (json!({"sub": "1", "exp": now() - 10}), 30, Ok(())),
            (json!({"sub": "1", "exp": now() - 10}), 0, Err("expired")),
            (json!({"sub": "1", "exp": now() - 100}), 30, Err("expired")),
            (
                json!({"sub": "1", "exp": now() + 60, "nbf": now() + 10}),
                30,
                Ok(()),
            ),
            (
                json!({"sub": "1", "exp": now() + 600, "nbf": now() + 100}),
                30,
                Err("nbf"),
            ),
            (
                json!({"sub": "1", "exp": now() + 60, "nbf": "soon"}),
                30,
                Err("nbf"),
            ),
        ];
        for (claims, leeway, want) in cases {
            let got = verify(SECRET, &mint_claims(SECRET, &claims), leeway);
            match want {
                Ok(()) => assert!(got.is_ok(), "{claims} {got:?}"),
                Err(w) => assert!(got.unwrap_err().contains(w), "{claims}"),
            }
        }
    }

    #[test]
    fn forged_tokens_fail() {
        let t = mint_claims("other", &json!({"sub": "1", "exp": now() + 10}));
        assert!(verify(SECRET, &t, LEEWAY)
            .unwrap_err()
            .contains("signature"));
    }

    #[test]
    fn alg_none_and_other_algorithms_fail() {
        let payload = B64.encode(json!({"sub": "1", "exp": now() + 10}).to_string());
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":["HS256"]}"#,
        ] {
            let t = format!("{}.{payload}.", B64.encode(header));
            assert!(
                verify(SECRET, &t, LEEWAY)
                    .unwrap_err()
                    .contains("algorithm"),
                "{header}"
            );
        }
    }

    #[test]
    fn unknown_crit_extensions_fail() {
        let claims = json!({"sub": "1", "exp": now() + 10});
        for header in [
            r#"{"alg":"HS256","crit":["exp-v2"],"exp-v2":1}"#,
            r#"{"alg":"HS256","crit":[]}"#,
        ] {
            let t = with_header(header, claims.clone());
            assert!(
                verify(SECRET, &t, LEEWAY).unwrap_err().contains("crit"),
                "{header}"
            );
        }
        assert!(verify(SECRET, &with_header(r#"{"alg":"HS256"}"#, claims), LEEWAY).is_ok());
    }

    #[test]
    fn malformed_tokens_fail() {
        for t in ["", "abc", "a.b", "a.b.c.d", "!!.??.##"] {
            assert!(verify(SECRET, t, LEEWAY).is_err(), "{t}");
        }
        let no_exp = mint_claims(SECRET, &json!({"sub": "1"}));
        assert!(verify(SECRET, &no_exp, LEEWAY).unwrap_err().contains("exp"));
        let no_sub = mint_claims(SECRET, &json!({"exp": now() + 10}));
        assert!(verify(SECRET, &no_sub, LEEWAY).unwrap_err().contains("sub"));
    }

    #[test]
    fn service_keys_compare_exactly() {
        assert!(service_key_matches("abc", "abc"));
        assert!(!service_key_matches("abc", "abd"));
        assert!(!service_key_matches("abc", "ab"));
    }
}
