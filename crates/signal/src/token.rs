//! Access tokens: HS256 JWTs signed with the API secret.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use kham_proto::{Grants, Role};
use serde::{Deserialize, Serialize};

/// Claims of an access token. `iss` is the API key whose secret signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Identity in the booking system (never shown to other participants).
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Room the token opens; empty for API tokens.
    #[serde(default)]
    pub room: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default)]
    pub nbf: u64,
    /// Unique token id, used to revoke it (deny, remove).
    pub jti: String,
    #[serde(default)]
    pub grants: Grants,
}

/// Why a token was refused. Each has a stable code returned in the 401 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no access token was given")]
    Missing,
    #[error("the access token is malformed or its signature is invalid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is for another room")]
    WrongRoom,
    #[error("the access token was revoked (denied or removed)")]
    Revoked,
}

impl TokenError {
    /// Stable wire code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing_token",
            TokenError::Invalid => "invalid_token",
            TokenError::Expired => "expired_token",
            TokenError::WrongRoom => "wrong_room",
            TokenError::Revoked => "revoked_token",
        }
    }
}

/// How far in the future a token's `nbf` (not before) may be and still be accepted: tolerance
/// for a booking system whose clock runs ahead of the server's. `exp` gets none.
pub const NBF_LEEWAY_SECS: u64 = 60;

/// Signs and checks tokens for one API key.
#[derive(Clone)]
pub struct TokenKeys {
    api_key: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        TokenKeys {
            api_key: api_key.to_owned(),
            encoding: EncodingKey::from_secret(api_secret.as_bytes()),
            decoding: DecodingKey::from_secret(api_secret.as_bytes()),
        }
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Signs claims (the caller fills `iss` with [`Self::api_key`]).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)
    }

    /// Verifies signature, algorithm, issuer, expiry (strictly: `exp <= now` is expired) and
    /// not-before (with [`NBF_LEEWAY_SECS`] of clock-skew tolerance). `now` is Unix seconds.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let c = self.decode(token, now)?;
        if c.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(c)
    }

    /// Signs claims with extra fields beside them (a doctor's `specialties`).
    pub fn sign_with<T: Serialize>(
        &self,
        claims: &Claims,
        extra: &T,
    ) -> Result<String, TokenError> {
        #[derive(Serialize)]
        struct Both<'a, T> {
            #[serde(flatten)]
            claims: &'a Claims,
            #[serde(flatten)]
            extra: &'a T,
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Both { claims, extra },
            &self.encoding,
        )
        .map_err(|_| TokenError::Invalid)
    }

    /// [`Self::verify`], and the token's extra fields read as `T` (checked by the same
    /// signature).
    pub fn verify_with<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(Claims, T), TokenError> {
        let c = self.verify(token, now)?;
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.set_issuer(&[&self.api_key]);
        let extra = jsonwebtoken::decode::<T>(token, &self.decoding, &v)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        Ok((c, extra))
    }

    /// Signature, algorithm, issuer and not-before; expiry is the caller's.
    fn decode(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let mut v = Validation::new(Algorithm::HS256);
        // Expiry is checked by the caller against its clock, with no leeway.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.set_issuer(&[&self.api_key]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let c = data.claims;
        if c.nbf > now + NBF_LEEWAY_SECS {
            return Err(TokenError::Invalid);
        }
        Ok(c)
    }

    /// Verifies a token presented with a resume: as [`Self::verify_for_room`] except its expiry.
    /// A resume also proves itself with the session's secret, and the session was authorised
    /// when it joined: a consult must not break because its join token (often minutes long)
    /// expired while a phone changed networks. A revoked token is still refused (the caller
    /// checks revocations), and a resume only finds a session that is still in its grace.
    pub fn verify_for_resume(
        &self,
        token: &str,
        room: &str,
        now: u64,
    ) -> Result<Claims, TokenError> {
        let c = self.decode(token, now)?;
        if c.room.is_empty() || c.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(c)
    }

    /// Verifies a token for joining `room`.
    pub fn verify_for_room(&self, token: &str, room: &str, now: u64) -> Result<Claims, TokenError> {
        let c = self.verify(token, now)?;
        if c.room.is_empty() || c.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(room: &str, exp: u64) -> Claims {
        Claims {
            iss: "key".into(),
            sub: "id-1".into(),
            name: "Nguyễn Văn A".into(),
            room: room.into(),
            role: Role::Patient,
            exp,
            nbf: 0,
            jti: "j1".into(),
            grants: Role::Patient.default_grants(),
        }
    }

    #[test]
    fn a_resume_may_present_an_expired_token_but_not_a_forged_or_foreign_one() {
        let k = TokenKeys::new("key", "secret-secret-secret-secret-32by");
        let t = k.sign(&claims("room-a", 2000)).unwrap();
        assert_eq!(
            k.verify_for_room(&t, "room-a", 3000),
            Err(TokenError::Expired)
        );
        assert_eq!(k.verify_for_resume(&t, "room-a", 3000).unwrap().sub, "id-1");
        assert_eq!(
            k.verify_for_resume(&t, "room-b", 3000),
            Err(TokenError::WrongRoom)
        );
        let other = TokenKeys::new("key", "another-secret-another-secret-32");
        let forged = other.sign(&claims("room-a", 2000)).unwrap();
        assert_eq!(
            k.verify_for_resume(&forged, "room-a", 3000),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn extra_claims_round_trip_and_are_covered_by_the_signature() {
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct Extra {
            #[serde(default)]
            specialties: Vec<String>,
        }
        let k = TokenKeys::new("key", "secret-secret-secret-secret-32by");
        let extra = Extra {
            specialties: vec!["cardiology".into()],
        };
        let t = k.sign_with(&claims("", 2000), &extra).unwrap();
        let (c, e) = k.verify_with::<Extra>(&t, 1000).unwrap();
        assert_eq!((c.sub.as_str(), e), ("id-1", extra));
        // A plain token reads as no extras; an expired or forged one is refused.
        let plain = k.sign(&claims("", 2000)).unwrap();
        assert_eq!(
            k.verify_with::<Extra>(&plain, 1000).unwrap().1,
            Extra::default()
        );
        assert_eq!(
            k.verify_with::<Extra>(&t, 2000).unwrap_err(),
            TokenError::Expired
        );
        let other = TokenKeys::new("key", "another-secret-another-secret-32");
        let forged = other
            .sign_with(
                &claims("", 2000),
                &Extra {
                    specialties: vec!["x".into()],
                },
            )
            .unwrap();
        assert_eq!(
            k.verify_with::<Extra>(&forged, 1000).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn round_trip_and_room_binding() {
        let k = TokenKeys::new("key", "secret-secret-secret-secret-32by");
        let t = k.sign(&claims("room-a", 2000)).unwrap();
        assert_eq!(
            k.verify_for_room(&t, "room-a", 1000).unwrap().name,
            "Nguyễn Văn A"
        );
        assert_eq!(
            k.verify_for_room(&t, "room-b", 1000),
            Err(TokenError::WrongRoom)
        );
    }

    #[test]
    fn refuses_expired_forged_and_garbage() {
        let k = TokenKeys::new("key", "secret-secret-secret-secret-32by");
        let t = k.sign(&claims("r", 2000)).unwrap();
        assert_eq!(k.verify(&t, 2000), Err(TokenError::Expired));
        let other = TokenKeys::new("key", "another-secret-another-secret-32");
        assert_eq!(other.verify(&t, 1000), Err(TokenError::Invalid));
        let wrong_issuer = TokenKeys::new("key2", "secret-secret-secret-secret-32by");
        assert_eq!(wrong_issuer.verify(&t, 1000), Err(TokenError::Invalid));
        assert_eq!(k.verify("not.a.jwt", 1000), Err(TokenError::Invalid));
        assert_eq!(k.verify("", 1000), Err(TokenError::Missing));
        // alg=none with the same claims must not pass.
        let parts: Vec<&str> = t.split('.').collect();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        assert_eq!(k.verify(&none, 1000), Err(TokenError::Invalid));
    }

    #[test]
    fn nbf_has_the_documented_leeway_and_exp_none() {
        let k = TokenKeys::new("key", "secret-secret-secret-secret-32by");
        let mut c = claims("r", 2000);
        c.nbf = 1000 + NBF_LEEWAY_SECS;
        let t = k.sign(&c).unwrap();
        assert!(k.verify(&t, 1000).is_ok(), "nbf within the leeway");
        assert_eq!(k.verify(&t, 999), Err(TokenError::Invalid), "nbf beyond it");
        assert!(k.verify(&t, 1999).is_ok());
        assert_eq!(
            k.verify(&t, 2000),
            Err(TokenError::Expired),
            "exp is strict"
        );
    }
}
