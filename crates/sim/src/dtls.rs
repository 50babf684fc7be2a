//! DTLS for the simulator: str0m's own DTLS (dimpl, aws-lc-rs), made to repeat from run to run.
//!
//! Two processes running the same scenario with the same seed diverged from the handshake on
//! (the same binary: p95 queue delay 4.38, 4.42 or 4.44 ms on one link), for two reasons:
//! - dimpl draws its handshake retransmission jitter (the flight timer is 1 s +- 50 %) from the
//!   thread's OS-seeded generator unless its config carries a seed, which str0m's aws-lc-rs
//!   provider sets only in str0m's own test builds; behind a 300 ms link it decides whether a
//!   flight is resent. Here each DTLS instance gets a seed drawn from `fastrand`, which `run`
//!   seeds per run.
//! - an ECDSA signature's DER encoding is 70 to 72 bytes at random (a certificate's and each
//!   handshake's), and on a thin link two bytes move every later packet by microseconds. Here
//!   every endpoint uses one fixed certificate (`data/dtls-cert.der`, a P-256 key made for the
//!   simulator only, `data/dtls-key.der`; it protects nothing) and each handshake signature is
//!   drawn again until it has the longest length, 72 bytes.
//!
//! Installed as the process default by `World::new`, in the simulator only: the server never
//! links this crate (a seeded DTLS would weaken its nonces, a shared key its identity).

use std::sync::{Arc, Once};
use std::time::Instant;

use dimpl::CryptoError as DimplCryptoError;
use dimpl::crypto::{Buf, HashAlgorithm, KeyProvider};
use dimpl::crypto::{SignatureAlgorithm, SigningKey};
use kham_sfu::str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
};
use kham_sfu::str0m::crypto::{CryptoError, CryptoProvider, from_feature_flags};

/// Installs the seeded DTLS provider as the process's default (once; later calls do nothing).
pub fn install() {
    static ONCE: Once = Once::new();
    static SEEDED: SeededDtls = SeededDtls;
    ONCE.call_once(|| {
        CryptoProvider {
            dtls_provider: &SEEDED,
            ..from_feature_flags()
        }
        .install_process_default();
    });
}

#[derive(Debug)]
struct SeededDtls;

impl DtlsProvider for SeededDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        Some(DtlsCert {
            certificate: include_bytes!("../data/dtls-cert.der").to_vec(),
            private_key: include_bytes!("../data/dtls-key.der").to_vec(),
        })
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        // As str0m's provider: ICE has verified the route, so no server cookie.
        let mut builder = dimpl::Config::builder()
            .use_server_cookie(false)
            .with_crypto_provider(dimpl::crypto::CryptoProvider {
                key_provider: &LongestSignatures,
                ..dimpl::crypto::aws_lc_rs::default_provider()
            })
            .dangerously_set_rng_seed(fastrand::u64(..));
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("dimpl config: {e}")))?,
        );
        let cert = cert.clone();
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            other => return Err(CryptoError::Other(format!("DTLS version {other}"))),
        };
        Ok(Box::new(Seeded(dtls)))
    }
}

struct Seeded(dimpl::Dtls);

impl std::fmt::Debug for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seeded")
    }
}

impl DtlsInstance for Seeded {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }
    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }
    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }
    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }
    fn is_active(&self) -> bool {
        self.0.is_active()
    }
    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }
    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

/// Loads keys whose signatures always have the longest DER length (see the module's comment).
#[derive(Debug)]
struct LongestSignatures;

/// The longest DER encoding of a P-256 ECDSA signature: both integers 33 bytes.
const P256_SIGNATURE_MAX: usize = 72;

impl KeyProvider for LongestSignatures {
    fn load_private_key(&self, key_der: &[u8]) -> Result<Box<dyn SigningKey>, DimplCryptoError> {
        let inner = dimpl::crypto::aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(key_der)?;
        Ok(Box::new(Longest(inner)))
    }
}

#[derive(Debug)]
struct Longest(Box<dyn SigningKey>);

impl SigningKey for Longest {
    fn sign(
        &mut self,
        data: &[u8],
        hash: HashAlgorithm,
        out: &mut Buf,
    ) -> Result<(), DimplCryptoError> {
        // About one signature in four has the longest length; 64 draws all shorter is 1e-8.
        for _ in 0..64 {
            out.clear();
            self.0.sign(data, hash, out)?;
            if out.len() == P256_SIGNATURE_MAX {
                break;
            }
        }
        Ok(())
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
    fn hash_algorithm(&self) -> HashAlgorithm {
        self.0.hash_algorithm()
    }
    fn supported_hash_algorithms(&self) -> &[HashAlgorithm] {
        self.0.supported_hash_algorithms()
    }
}
