//! Client tokens (JWT, HS256 only) and the host's service key: minting, verifying, comparing in
//! constant time. Knows nothing of HTTP.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
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
    alg: String,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<UserId>,
    exp: Option<f64>,
    profile: Option<Profile>,
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
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = B64.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let sig = B64.encode(sign(secret, &input));
    format!("{input}.{sig}")
}

/// Verifies signature, algorithm and expiry at `now_s` (Unix seconds). The error says what is wrong.
pub fn verify(secret: &str, token: &str, now_s: i64) -> Result<Claims, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token is not a JWT (three dot-separated parts)".into());
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("token header is not base64url JSON")?;
    if header.alg != "HS256" {
        return Err(format!(
            "token algorithm {:?} is not accepted; use HS256",
            header.alg
        ));
    }
    let sig = B64
        .decode(s)
        .map_err(|_| "token signature is not base64url")?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| "token signature does not match")?;
    let raw: RawClaims = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("token claims are not valid (sub must be a user id, exp a number)")?;
    let user = raw.sub.ok_or("token has no sub claim")?;
    let exp = raw.exp.ok_or("token has no exp claim")? as i64;
    if exp <= now_s {
        return Err("token has expired".into());
    }
    Ok(Claims {
        user,
        exp,
        profile: raw.profile,
    })
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
    const NOW: i64 = 1_800_000_000;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn minted_tokens_verify() {
        let t = mint(SECRET, &user("42"), 60);
        let c = verify(SECRET, &t, crate::time::now_ms() / 1000).unwrap();
        assert_eq!(c.user, user("42"));
    }

    #[test]
    fn numeric_sub_and_profile_are_read() {
        let t = mint_claims(
            SECRET,
            &json!({"sub": 7, "exp": NOW + 10, "profile": {"firstName": "Ann", "email": "a@x"}}),
        );
        let c = verify(SECRET, &t, NOW).unwrap();
        assert_eq!(c.user, user("7"));
        let p = c.profile.unwrap();
        assert_eq!(p.first_name.as_deref(), Some("Ann"));
        assert_eq!(p.email.as_deref(), Some("a@x"));
    }

    #[test]
    fn expired_tokens_fail() {
        let t = mint_claims(SECRET, &json!({"sub": "1", "exp": NOW}));
        assert!(verify(SECRET, &t, NOW).unwrap_err().contains("expired"));
    }

    #[test]
    fn forged_tokens_fail() {
        let t = mint_claims("other", &json!({"sub": "1", "exp": NOW + 10}));
        assert!(verify(SECRET, &t, NOW).unwrap_err().contains("signature"));
    }

    #[test]
    fn alg_none_and_other_algorithms_fail() {
        let payload = B64.encode(json!({"sub": "1", "exp": NOW + 10}).to_string());
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
        ] {
            let t = format!("{}.{payload}.", B64.encode(header));
            assert!(
                verify(SECRET, &t, NOW).unwrap_err().contains("algorithm"),
                "{header}"
            );
        }
    }

    #[test]
    fn malformed_tokens_fail() {
        for t in ["", "abc", "a.b", "a.b.c.d", "!!.??.##"] {
            assert!(verify(SECRET, t, NOW).is_err(), "{t}");
        }
        let no_exp = mint_claims(SECRET, &json!({"sub": "1"}));
        assert!(verify(SECRET, &no_exp, NOW).unwrap_err().contains("exp"));
        let no_sub = mint_claims(SECRET, &json!({"exp": NOW + 10}));
        assert!(verify(SECRET, &no_sub, NOW).unwrap_err().contains("sub"));
    }

    #[test]
    fn service_keys_compare_exactly() {
        assert!(service_key_matches("abc", "abc"));
        assert!(!service_key_matches("abc", "abd"));
        assert!(!service_key_matches("abc", "ab"));
    }
}
