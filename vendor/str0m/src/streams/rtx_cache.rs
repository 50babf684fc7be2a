use std::time::Duration;
use std::time::Instant;

use crate::io::DATAGRAM_MAX_PACKET_SIZE;
use crate::rtp_::SeqNo;

use super::RtpPacket;
use super::rtx_cache_buf::EvictingBuffer;

const RTX_CACHE_SIZE_QUANTIZER: usize = 25;
const RTX_CACHE_QUANTIZE_SLOTS: usize = DATAGRAM_MAX_PACKET_SIZE / RTX_CACHE_SIZE_QUANTIZER;

// Added by kham: how long a packet stays answerable to a NACK when the cache is sized by round
// trip (`RtxCache::new_rtt_sized`): 3 x RTT from the receiver's reports, at least 1 s (1 s
// until the first report gives an RTT), at most the configured age; libwebrtc's
// RtpPacketHistory keeps max(1 s, 3 x RTT) too. Why: the 3 s history of every forwarded video
// stream was most of an SFU's memory per subscriber: kham's load generator (loopback, 15 s runs,
// idle machine) solved 0.64 MB per subscriber with 3 s, 0.50 MB with this (target 0.5), and 0.60
// -> 0.21 MB per published video. Padding keeps its 3 s history (`spare` below): shortening the whole
// cache to 1.5 s had lowered kham's mean height in the adaptation simulator on 10 of 13
// scenarios; with this, no family moved beyond run-to-run spread (benches/README.md, "session 29").
const NACK_AGE_MIN: Duration = Duration::from_secs(1);
const NACK_AGE_RTTS: u32 = 3;
const SPARE_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct RtxCache {
    // Data, new additions here probably need to be cleared in [`clear`].
    packet_by_seq_no: EvictingBuffer<RtpPacket>,

    // Technically we want [Option<SeqNo>; X] to indicate the absence of
    // a SeqNo. However We can half the storage space by using the sentinel
    // values SeqNo::MAX to indicate None
    seq_no_by_quantized_size: [SeqNo; RTX_CACHE_QUANTIZE_SLOTS],

    // Added by kham: the padding history apart from the NACK history. Spurious resends
    // (padding, probes) draw on the newest packet of each size class no older than `max_age`
    // (3 s), as they did when one 3 s cache held everything; the NACK history
    // (`packet_by_seq_no`) keeps only `nack_age`. A size class's newest packet that leaves the
    // NACK history younger than `max_age` moves here (no copy), one per size class at most.
    /// The configured age: NACK history when not sized by RTT, padding history always.
    max_age: Duration,
    /// Whether the NACK history follows the round trip (`set_rtt`).
    rtt_sized: bool,
    /// Indexed by quantized size, allocated on first use.
    spare: Vec<Option<Box<Spare>>>,
    spare_count: usize,
    /// The time of the last `cache_sent_packet`: the cache ages only then (as str0m's eviction).
    last_push: Option<Instant>,
    /// When expired spares were last dropped (every 100 ms at most; a spare's age is checked
    /// again when it is picked).
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Spare {
    timestamp: Instant,
    packet: RtpPacket,
}

impl RtxCache {
    pub fn new(max_packet_count: usize, max_packet_age: Duration) -> Self {
        Self {
            packet_by_seq_no: EvictingBuffer::new(10, max_packet_age, max_packet_count),
            seq_no_by_quantized_size: [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS],
            max_age: max_packet_age,
            rtt_sized: false,
            spare: Vec::new(),
            spare_count: 0,
            last_push: None,
            last_sweep: None,
        }
    }

    /// Added by kham: a cache whose NACK history is max(1 s, 3 x RTT) (at most
    /// `max_packet_age`), while padding keeps drawing on `max_packet_age`.
    pub fn new_rtt_sized(max_packet_count: usize, max_packet_age: Duration) -> Self {
        let mut cache = Self::new(max_packet_count, max_packet_age);
        cache.rtt_sized = true;
        cache
            .packet_by_seq_no
            .set_max_age(NACK_AGE_MIN.min(max_packet_age));
        cache
    }

    /// Added by kham: the round trip from a receiver report (only for `new_rtt_sized`).
    pub fn set_rtt(&mut self, rtt: Duration) {
        if !self.rtt_sized || self.max_age.is_zero() {
            return;
        }
        let age = (rtt * NACK_AGE_RTTS).clamp(NACK_AGE_MIN.min(self.max_age), self.max_age);
        self.packet_by_seq_no.set_max_age(age);
    }

    #[cfg(test)]
    pub fn nack_age(&self) -> Duration {
        self.packet_by_seq_no.max_age()
    }

    pub fn cache_sent_packet(&mut self, packet: RtpPacket, now: Instant) {
        assert!(packet.nackable);
        let seq_no = packet.seq_no;
        let quantized_size = packet.payload.len() / RTX_CACHE_SIZE_QUANTIZER;
        // The size class has a newer packet: its spare can never be picked again.
        if let Some(s) = self.spare.get_mut(quantized_size) {
            if s.take().is_some() {
                self.spare_count -= 1;
            }
        }
        self.packet_by_seq_no.push(*seq_no, now, packet);
        self.seq_no_by_quantized_size[quantized_size] = seq_no;
        self.last_push = Some(now);
        self.remove_old_packets(now);
    }

    pub fn last_cached_seq_no(&self) -> Option<SeqNo> {
        Some(self.packet_by_seq_no.last_position()?.into())
    }

    pub fn get_cached_packet_by_seq_no(&mut self, seq_no: SeqNo) -> Option<&mut RtpPacket> {
        self.packet_by_seq_no.get_mut(*seq_no)
    }

    pub fn get_cached_packet_smaller_than(&mut self, max_size: usize) -> Option<&mut RtpPacket> {
        let quantized_size = max_size / RTX_CACHE_SIZE_QUANTIZER;

        if !self.rtt_sized {
            let seq_no = self.seq_no_by_quantized_size[..quantized_size]
                .iter()
                .rev()
                .filter(|seq_no| !seq_no.is_max())
                .find(|seq_no| self.packet_by_seq_no.contains(***seq_no))?;

            return self.get_cached_packet_by_seq_no(*seq_no);
        }

        // Sized by RTT (kham): the newest packet of the largest size class that is still in
        // either history. (str0m's lookup above gives up, padding with blank packets, when the
        // slot of a size class's evicted newest packet has been reused; here a smaller class
        // is tried instead.)
        let mut found = None;
        for q in (0..quantized_size.min(RTX_CACHE_QUANTIZE_SLOTS)).rev() {
            let seq_no = self.seq_no_by_quantized_size[q];
            if seq_no.is_max() {
                continue;
            }
            if self.packet_by_seq_no.get(*seq_no).is_some() {
                found = Some((q, false));
                break;
            }
            if self.spare_usable(q, seq_no) {
                found = Some((q, true));
                break;
            }
        }
        match found? {
            (q, false) => {
                let seq_no = self.seq_no_by_quantized_size[q];
                self.packet_by_seq_no.get_mut(*seq_no)
            }
            (q, true) => Some(&mut self.spare[q].as_mut()?.packet),
        }
    }

    fn spare_usable(&self, q: usize, seq_no: SeqNo) -> bool {
        let (Some(Some(s)), Some(last_push)) = (self.spare.get(q), self.last_push) else {
            return false;
        };
        s.packet.seq_no == seq_no && last_push.saturating_duration_since(s.timestamp) <= self.max_age
    }

    fn remove_old_packets(&mut self, now: Instant) {
        if !self.rtt_sized {
            self.packet_by_seq_no.maybe_evict(now);
            return;
        }
        let max_age = self.max_age;
        let by_size = &self.seq_no_by_quantized_size;
        let spare = &mut self.spare;
        let spare_count = &mut self.spare_count;
        self.packet_by_seq_no
            .maybe_evict_with(now, |position, timestamp, packet| {
                let q = packet.payload.len() / RTX_CACHE_SIZE_QUANTIZER;
                if *by_size[q] != position || now.saturating_duration_since(timestamp) > max_age {
                    return;
                }
                if spare.is_empty() {
                    spare.resize_with(RTX_CACHE_QUANTIZE_SLOTS, || None);
                }
                if spare[q].replace(Box::new(Spare { timestamp, packet })).is_none() {
                    *spare_count += 1;
                }
            });
        let sweep_due = self
            .last_sweep
            .map_or(true, |t| now.saturating_duration_since(t) >= SPARE_SWEEP_INTERVAL);
        if self.spare_count > 0 && sweep_due {
            self.last_sweep = Some(now);
            for s in self.spare.iter_mut() {
                if s.as_ref()
                    .is_some_and(|s| now.saturating_duration_since(s.timestamp) > max_age)
                {
                    *s = None;
                    self.spare_count -= 1;
                }
            }
        }
    }

    pub(crate) fn last_packet(&self) -> Option<&[u8]> {
        let packet = self.packet_by_seq_no.last()?;
        Some(packet.payload.as_ref())
    }

    pub(crate) fn clear(&mut self) {
        self.packet_by_seq_no.clear();
        self.seq_no_by_quantized_size = [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS];
        self.spare.clear();
        self.spare_count = 0;
        self.last_push = None;
        self.last_sweep = None;
    }
}

#[cfg(test)]
mod test {
    use crate::rtp_::MediaTime;
    use crate::rtp_::RtpHeader;

    use super::*;

    fn after(now: Instant, millis: u64) -> Instant {
        now + Duration::from_millis(millis)
    }

    fn packet(now: Instant, seq_no: u64, millis: u64) -> RtpPacket {
        RtpPacket {
            header: RtpHeader::default(),
            seq_no: seq_no.into(),
            time: MediaTime::from_90khz(0),
            payload: millis.to_be_bytes().into(),
            vp8_patch: None,
            timestamp: after(now, millis),
            last_sender_info: None,
            nackable: true,
        }
    }

    #[test]
    fn rtx_cache_0_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(0, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_by_seq_no(1.into())
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(1000)
        );
    }

    #[test]
    fn rtx_cache_0_duration() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(0));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(1.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_smaller_than(1000));
    }

    #[test]
    fn rtx_cache_1_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(1, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_by_seq_no(1.into())
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(1000)
        );
        assert_eq!(
            Some(&mut packet(now, 1, 10)),
            rtx_cache.get_cached_packet_smaller_than(25)
        );
        assert_eq!(None, rtx_cache.get_cached_packet_smaller_than(24));
        rtx_cache.cache_sent_packet(packet(now, 2, 20), after(now, 20));
        assert_eq!(
            Some(&mut packet(now, 2, 20)),
            rtx_cache.get_cached_packet_by_seq_no(2.into())
        );
    }

    #[test]
    fn rtx_cache_100_sized_backwards() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(100, Duration::from_secs(3));

        for i in 1..=200 {
            let seq_no = 201 - i;
            let pkt = packet(now, seq_no, (201 - i) * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(
            Some(&mut packet(now, 200, 2000)),
            rtx_cache.get_cached_packet_by_seq_no(200.into())
        );
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(100.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(101.into()));
    }

    #[test]
    fn rtx_cache_eviction() {
        let now = Instant::now();
        // Cache can take all entries
        let mut rtx_cache = RtxCache::new(400, Duration::from_secs(1));
        for i in 1..=200 {
            let seq_no = i;
            let pkt = packet(now, seq_no, i * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(99.into()));

        assert_eq!(
            Some(&mut packet(now, 100, 1000)),
            rtx_cache.get_cached_packet_by_seq_no(100.into())
        );
        assert_eq!(
            Some(&mut packet(now, 200, 2000)),
            rtx_cache.get_cached_packet_by_seq_no(200.into())
        );
    }

    // Added by kham.
    fn sized(now: Instant, seq_no: u64, millis: u64, len: usize) -> RtpPacket {
        let mut p = packet(now, seq_no, millis);
        p.payload = vec![0; len].into();
        p
    }

    #[test]
    fn rtt_sized_nack_history_follows_rtt() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new_rtt_sized(2000, Duration::from_secs(3));
        assert_eq!(rtx_cache.nack_age(), Duration::from_secs(1));
        rtx_cache.set_rtt(Duration::from_millis(10));
        assert_eq!(rtx_cache.nack_age(), Duration::from_secs(1));
        rtx_cache.set_rtt(Duration::from_millis(600));
        assert_eq!(rtx_cache.nack_age(), Duration::from_millis(1800));
        rtx_cache.set_rtt(Duration::from_secs(2));
        assert_eq!(rtx_cache.nack_age(), Duration::from_secs(3));
        // Not sized by RTT: unchanged.
        let mut fixed = RtxCache::new(2000, Duration::from_secs(3));
        fixed.set_rtt(Duration::from_millis(10));
        assert_eq!(fixed.nack_age(), Duration::from_secs(3));
    }

    #[test]
    fn rtt_sized_padding_keeps_newest_of_each_size_for_max_age() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new_rtt_sized(2000, Duration::from_secs(3));
        // A large packet at 0 ms, then small ones every 10 ms for 2 s.
        rtx_cache.cache_sent_packet(sized(now, 1, 0, 1000), now);
        for i in 2..=201 {
            rtx_cache.cache_sent_packet(sized(now, i, i * 10, 100), after(now, i * 10));
        }
        // NACK history is 1 s: the large packet is gone from it, padding still has it.
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(1.into()));
        assert_eq!(None, rtx_cache.get_cached_packet_by_seq_no(100.into()));
        assert!(rtx_cache.get_cached_packet_by_seq_no(150.into()).is_some());
        let p = rtx_cache.get_cached_packet_smaller_than(1100).unwrap();
        assert_eq!(*p.seq_no, 1);
        // Below 1000 bytes: the newest small packet.
        let p = rtx_cache.get_cached_packet_smaller_than(500).unwrap();
        assert_eq!(*p.seq_no, 201);
        // Past 3 s the large packet is gone for padding too.
        rtx_cache.cache_sent_packet(sized(now, 202, 3100, 100), after(now, 3100));
        let p = rtx_cache.get_cached_packet_smaller_than(1100).unwrap();
        assert_eq!(*p.seq_no, 202);
        // A newer packet of the same size replaces the spare.
        rtx_cache.cache_sent_packet(sized(now, 203, 3200, 1000), after(now, 3200));
        let p = rtx_cache.get_cached_packet_smaller_than(1100).unwrap();
        assert_eq!(*p.seq_no, 203);
        rtx_cache.clear();
        assert!(rtx_cache.get_cached_packet_smaller_than(1100).is_none());
    }
}
