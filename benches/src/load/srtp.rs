//! Which SRTP protection profile a media session negotiated, read off the DTLS 1.2
//! ServerHello's `use_srtp` extension (RFC 5764 §4.1.1) as it passes through the generator's
//! socket, in either direction (str0m is the DTLS server towards one server and the client
//! towards another). str0m logs the profile only at debug level and does not expose it; a
//! comparison between servers must say which cipher each one paid for (AES-GCM and AES-CM +
//! HMAC-SHA1 differ several times in cost).
//!
//! Everything here reads untrusted bytes: bounds are checked, nothing panics.

/// DTLS record content type "handshake".
const HANDSHAKE: u8 = 22;
/// Handshake message type "server_hello".
const SERVER_HELLO: u8 = 2;
/// TLS extension `use_srtp`.
const USE_SRTP: u16 = 0x000e;
const RECORD_HEADER: usize = 13;
const HANDSHAKE_HEADER: usize = 12;

/// The IANA name of a DTLS-SRTP protection profile.
pub fn profile_name(id: u16) -> String {
    match id {
        0x0001 => "SRTP_AES128_CM_HMAC_SHA1_80".into(),
        0x0002 => "SRTP_AES128_CM_HMAC_SHA1_32".into(),
        0x0007 => "SRTP_AEAD_AES_128_GCM".into(),
        0x0008 => "SRTP_AEAD_AES_256_GCM".into(),
        other => format!("0x{other:04x}"),
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u24_at(b: &[u8], i: usize) -> Option<usize> {
    Some(
        (usize::from(*b.get(i)?) << 16)
            | (usize::from(*b.get(i + 1)?) << 8)
            | usize::from(*b.get(i + 2)?),
    )
}

/// The profile chosen in a ServerHello carried by this datagram, if it carries one (only
/// unfragmented ServerHellos are read: they are a few dozen bytes).
pub fn server_hello_profile(datagram: &[u8]) -> Option<u16> {
    // RFC 7983 demultiplexing: DTLS records start with 20..=63.
    if datagram.first() != Some(&HANDSHAKE) {
        return None;
    }
    let mut rec = datagram;
    while rec.len() >= RECORD_HEADER {
        let len = usize::from(u16_at(rec, 11)?);
        let body = rec.get(RECORD_HEADER..RECORD_HEADER + len)?;
        if rec[0] == HANDSHAKE
            && let Some(p) = hello(body)
        {
            return Some(p);
        }
        rec = &rec[RECORD_HEADER + len..];
    }
    None
}

/// The `use_srtp` profile of a handshake fragment that is a whole ServerHello.
fn hello(h: &[u8]) -> Option<u16> {
    if *h.first()? != SERVER_HELLO {
        return None;
    }
    let len = u24_at(h, 1)?;
    let (offset, frag) = (u24_at(h, 6)?, u24_at(h, 9)?);
    if offset != 0 || frag != len {
        return None;
    }
    let m = h.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + len)?;
    // version (2), random (32), session id (1 + n), cipher suite (2), compression (1).
    let sid = usize::from(*m.get(34)?);
    let mut i = 35 + sid + 3;
    let ext_len = usize::from(u16_at(m, i)?);
    i += 2;
    let end = i.checked_add(ext_len)?;
    let exts = m.get(i..end)?;
    let mut j = 0;
    while j + 4 <= exts.len() {
        let kind = u16_at(exts, j)?;
        let n = usize::from(u16_at(exts, j + 2)?);
        let data = exts.get(j + 4..j + 4 + n)?;
        if kind == USE_SRTP {
            // profiles length (2, one profile in a ServerHello), profile (2), MKI length (1).
            return u16_at(data, 2);
        }
        j += 4 + n;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A DTLS record holding a ServerHello with `use_srtp` = `profile` (and one other
    /// extension before it).
    fn record(profile: u16) -> Vec<u8> {
        let mut m = vec![0xfe, 0xfd];
        m.extend([7u8; 32]);
        m.push(0); // no session id
        m.extend([0xc0, 0x2b, 0]); // cipher suite, compression
        let exts = [
            &[0xff, 0x01, 0, 1, 0][..],
            &[
                0x00,
                0x0e,
                0,
                5,
                0,
                2,
                (profile >> 8) as u8,
                profile as u8,
                0,
            ][..],
        ]
        .concat();
        m.extend((exts.len() as u16).to_be_bytes());
        m.extend(exts);
        let mut h = vec![SERVER_HELLO];
        let l = m.len() as u32;
        h.extend(&l.to_be_bytes()[1..]);
        h.extend([0, 0, 0, 0, 0]);
        h.extend(&l.to_be_bytes()[1..]);
        h.extend(m);
        let mut r = vec![HANDSHAKE, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
        r.extend((h.len() as u16).to_be_bytes());
        r.extend(h);
        r
    }

    #[test]
    fn reads_the_profile_and_survives_every_truncation() {
        let r = record(0x0008);
        assert_eq!(server_hello_profile(&r), Some(0x0008));
        assert_eq!(profile_name(0x0008), "SRTP_AEAD_AES_256_GCM");
        // A second record after it, and truncations anywhere: never a panic.
        let mut two = record(0x0007);
        two.extend(record(0x0001));
        assert_eq!(server_hello_profile(&two), Some(0x0007));
        for n in 0..r.len() {
            assert_eq!(server_hello_profile(&r[..n]), None);
        }
        assert_eq!(server_hello_profile(&[0x80, 1, 2]), None);
    }
}
