//! Vital signs and still images over WebRTC data channels (issue 16): a publisher's numerics,
//! waveforms and image chunks, forwarded to every other participant holding the `health_data`
//! grant.
//!
//! Each client opens two channels in its offer (in-band, DCEP): [`WAVE_LABEL`] (unordered, no
//! retransmission: a late waveform sample is worth nothing) and [`NUM_LABEL`] (reliable and
//! ordered: numerics and events). The room looks at the first two bytes of a frame only (the
//! framing version and the kind, `PROTOCOL.md`, "Vital signs"): never at the values. A frame it
//! forwards gets the publisher's participant id put in front ([`forwarded_frame`]), so a
//! subscriber knows whose vitals these are and a publisher cannot speak for another.
//!
//! Priority on a thin link: the measured rate of the vitals a subscriber receives is reserved by
//! its allocator like audio, ahead of video (`adapt.rs`); a subscriber whose link does not carry
//! audio plus all of that gets no waveforms but keeps the numerics ([`PeerVitals::wave_ok`]).
//!
//! Health data: no frame content is ever logged, counted in metrics or kept; a dropped frame is
//! counted per participant and its reason logged once, at debug level.

use std::time::{Duration, Instant};

use str0m::channel::ChannelId;

/// Label of the unordered, unreliable channel of waveforms.
pub const WAVE_LABEL: &str = "kham-vitals-wave";
/// Label of the reliable channel of numerics and events.
pub const NUM_LABEL: &str = "kham-vitals-num";
/// Label of the reliable channel of still images (chunks and their acknowledgements, which
/// the web client's end-to-end window keeps below the send buffer).
pub const IMAGE_LABEL: &str = "kham-image";
/// The framing version this server forwards.
pub const VITALS_VERSION: u8 = 1;
/// Kind byte of a numerics frame.
pub const KIND_NUMERICS: u8 = 1;
/// Kind byte of a waveform frame.
pub const KIND_WAVE: u8 = 2;
/// Kind bytes of the image channel: start, chunk, end, acknowledgement.
pub const KINDS_IMAGE: std::ops::RangeInclusive<u8> = 3..=6;
/// Kind byte of an image transfer's start, of one of its chunks, of its end.
pub const KIND_IMAGE_START: u8 = 3;
pub const KIND_IMAGE_CHUNK: u8 = 4;
pub const KIND_IMAGE_END: u8 = 5;
/// The web client's end-to-end window of an image transfer: at most this much sent beyond what
/// the slowest receiver acknowledged (`web-client/sdk/images.js`).
pub const IMAGE_WINDOW: u64 = 64 * 1024;
/// The SCTP send buffer towards each participant, all its channels together (str0m's default
/// is 128 KiB). Each sender keeps up to [`IMAGE_WINDOW`] of a transfer unacknowledged, and that
/// much can wait here for a receiver on a thin link: two senders at once (2 x 64 KiB plus frame
/// headers) overflowed 128 KiB, and a chunk the buffer refuses is lost for good (the receiver
/// then gives the transfer up). 256 KiB holds three full windows and the vital signs; the web
/// client also splits its window with the transfers from others it sees. Bounded per
/// participant: what does not fit is refused and counted, never queued elsewhere.
pub const SEND_BUFFER: usize = 256 * 1024;
/// An image transfer with neither chunk nor end for this long is over for the reservation (a
/// sender gone quiet; its receivers give up after 30 s). Longer than a window takes at 50
/// kbit/s (10 s), so a transfer paced by a thin receiver keeps its reservation.
pub const IMAGE_IDLE: Duration = Duration::from_secs(12);
/// The most reserved for an image in flight before it has shown its rate: on a link of a few
/// Mbit/s the camera keeps most of it, and a transfer that gets more than this is reserved at
/// its measured rate anyway.
pub const IMAGE_FLOOR_MAX_BPS: u64 = 600_000;
/// Largest frame accepted on the image channel (a 16 KiB chunk and its header).
pub const MAX_IMAGE_FRAME: usize = 16 * 1024 + 64;
/// Set in the kind byte of a frame the server forwarded (the source id follows).
pub const FORWARDED: u8 = 0x80;
/// Largest frame accepted from a client (a waveform frame of 40 ms at 500 Hz is about 60 bytes).
pub const MAX_FRAME: usize = 1024;
/// Bytes a frame costs on the wire beyond its payload (SCTP DATA chunk 16, common header 12,
/// DTLS record 29, UDP/IP 28), for the rate the allocator reserves.
const WIRE_OVERHEAD: usize = 85;

/// Which channel a frame came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Wave,
    Numerics,
    Image,
}

/// Why a frame is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("vitals frame shorter than its header")]
    TooShort,
    #[error("vitals frame longer than {MAX_FRAME} bytes")]
    TooLong,
    #[error("vitals frame sent as text")]
    Text,
    #[error("unknown vitals framing version")]
    Version,
    #[error("vitals frame of a kind its channel does not carry")]
    Kind,
    #[error("vitals from a participant without the publish and health_data grants")]
    NotAllowed,
}

/// Checks the framing of one client frame on `lane` (version and kind; nothing else is read).
pub fn check_frame(lane: Lane, binary: bool, data: &[u8]) -> Result<(), FrameError> {
    if !binary {
        return Err(FrameError::Text);
    }
    if data.len() < 2 {
        return Err(FrameError::TooShort);
    }
    let max = if lane == Lane::Image {
        MAX_IMAGE_FRAME
    } else {
        MAX_FRAME
    };
    if data.len() > max {
        return Err(FrameError::TooLong);
    }
    if data[0] != VITALS_VERSION {
        return Err(FrameError::Version);
    }
    let ok = match lane {
        Lane::Wave => data[1] == KIND_WAVE,
        Lane::Numerics => data[1] == KIND_NUMERICS,
        Lane::Image => KINDS_IMAGE.contains(&data[1]),
    };
    if !ok {
        return Err(FrameError::Kind);
    }
    Ok(())
}

/// The frame a subscriber gets for client frame `data` (already checked) from `source`: version,
/// kind with [`FORWARDED`] set, the length of the source id, the id, then the rest of the frame.
/// Written into `out` (cleared first), a buffer the room reuses.
pub fn forwarded_frame(source: &str, data: &[u8], out: &mut Vec<u8>) {
    let id = &source.as_bytes()[..source.len().min(usize::from(u8::MAX))];
    out.clear();
    out.push(data[0]);
    out.push(data[1] | FORWARDED);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&data[2..]);
}

/// What a subscriber's allocator reserves for the images it receives: their measured rate
/// (`measured_bps`), and while a transfer is in flight (`in_flight`) at least what its window
/// can carry per round trip (`rtt`; 100 ms when not known yet), at most
/// [`IMAGE_FLOOR_MAX_BPS`] and what the estimate (`estimate_bps`, at 95 %) leaves beside audio
/// and the vital signs (`other_bps`).
///
/// Reserved only at the measured rate, an image on a thin link waited for the estimate and
/// its own rate to settle: camera video filling the link left the transfer a trickle, so its
/// measured rate, and so its reservation, stayed small (1 MB over 200 kbit/s took 99 s sent 5 s
/// after the doctor joined, 56 s after 15 s). Reserved from its start, the camera steps down
/// (or pauses) at once and the window grows into what it gave up.
pub fn image_reservation(
    measured_bps: u64,
    in_flight: bool,
    estimate_bps: Option<u64>,
    rtt: Option<Duration>,
    other_bps: u64,
) -> u64 {
    let (true, Some(estimate)) = (in_flight, estimate_bps) else {
        return measured_bps;
    };
    let rtt = rtt
        .unwrap_or(Duration::from_millis(100))
        .max(Duration::from_millis(10));
    let window_bps = (IMAGE_WINDOW * 8) as f64 / rtt.as_secs_f64();
    let left = ((estimate as f64 * 0.95) as u64).saturating_sub(other_bps);
    let floor = (window_bps as u64).min(IMAGE_FLOOR_MAX_BPS).min(left);
    measured_bps.max(floor)
}

/// Length of a measurement window of the vitals rate.
const WINDOW: Duration = Duration::from_secs(1);

/// One participant's vitals channels and what it publishes.
#[derive(Debug, Default)]
pub struct PeerVitals {
    wave: Option<ChannelId>,
    num: Option<ChannelId>,
    image: Option<ChannelId>,
    window_start: Option<Instant>,
    window_bytes: [u64; 3],
    /// Smoothed wire rate of its waveforms, numerics and images, bit/s.
    bps: [u64; 3],
    /// Frames dropped (bad framing, not allowed), for tests and operators' debugging.
    pub dropped: u64,
    logged: bool,
    /// This participant's link does not carry waveforms now (as a subscriber).
    wave_off: bool,
    /// Frames to it that its SCTP send buffer refused (dropped).
    pub refused: u64,
    /// Its estimate has been below the reservation since then.
    below_since: Option<Instant>,
    /// Its estimate has been 25 % above the reservation since then (waveforms off).
    above_since: Option<Instant>,
    /// An image transfer of this publisher is in flight until then (`image_frame`).
    image_until: Option<Instant>,
}

/// How long a subscriber's estimate must stay below its reservation before waveforms stop,
/// and 25 % above it before they come back.
pub const WAVE_OFF_AFTER: Duration = Duration::from_secs(2);

/// What a subscriber's allocation says of its link, for the waveforms (`update_wave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveLink {
    /// The allocator paused some video for bandwidth, outside the estimator's start window.
    pub thin: bool,
    /// Some video is forwarded to it, or it is sent no video at all (nothing to judge by).
    pub video_flows: bool,
}

impl PeerVitals {
    /// A channel the participant opened; a label that is not ours is ignored.
    pub fn opened(&mut self, id: ChannelId, label: &str) {
        match label {
            WAVE_LABEL => self.wave = Some(id),
            NUM_LABEL => self.num = Some(id),
            IMAGE_LABEL => self.image = Some(id),
            _ => {}
        }
    }

    /// A channel closed.
    pub fn closed(&mut self, id: ChannelId) {
        if self.wave == Some(id) {
            self.wave = None;
        }
        if self.num == Some(id) {
            self.num = None;
        }
        if self.image == Some(id) {
            self.image = None;
        }
    }

    /// The lane of one of its channels.
    pub fn lane(&self, id: ChannelId) -> Option<Lane> {
        if self.wave == Some(id) {
            Some(Lane::Wave)
        } else if self.num == Some(id) {
            Some(Lane::Numerics)
        } else if self.image == Some(id) {
            Some(Lane::Image)
        } else {
            None
        }
    }

    /// Its channel of a lane, when open.
    pub fn channel(&self, lane: Lane) -> Option<ChannelId> {
        match lane {
            Lane::Wave => self.wave,
            Lane::Numerics => self.num,
            Lane::Image => self.image,
        }
    }

    /// Counts a dropped frame; true the first time (log that one).
    pub fn drop_frame(&mut self) -> bool {
        self.dropped += 1;
        !std::mem::replace(&mut self.logged, true)
    }

    /// Counts a forwarded frame of `len` bytes published on `lane` at `now`.
    pub fn record(&mut self, now: Instant, lane: Lane, len: usize) {
        self.roll(now);
        let l = match lane {
            Lane::Wave => 0,
            Lane::Numerics => 1,
            Lane::Image => 2,
        };
        self.window_bytes[l] += (len + WIRE_OVERHEAD) as u64;
    }

    /// Notes an image frame of kind `kind` this participant published at `now` (already
    /// checked): a start or a chunk keeps a transfer in flight for [`IMAGE_IDLE`], its end
    /// (complete or cancelled) ends it. A receiver's acknowledgement is no transfer of its own.
    pub fn image_frame(&mut self, now: Instant, kind: u8) {
        match kind {
            KIND_IMAGE_START | KIND_IMAGE_CHUNK => self.image_until = Some(now + IMAGE_IDLE),
            KIND_IMAGE_END => self.image_until = None,
            _ => {}
        }
    }

    /// Whether an image transfer of this publisher is in flight at `now`.
    pub fn image_in_flight(&self, now: Instant) -> bool {
        self.image_until.is_some_and(|u| now < u)
    }

    /// Closes finished windows (a quiet publisher's rate decays to zero).
    pub fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return;
        }
        let secs = elapsed.as_secs_f64();
        for l in 0..3 {
            let measured = (self.window_bytes[l] * 8) as f64 / secs;
            // Up at once (the reservation must cover what flows), down halfway per window.
            let old = self.bps[l] as f64;
            self.bps[l] = if measured >= old {
                measured
            } else {
                (old + measured) / 2.0
            } as u64;
            self.window_bytes[l] = 0;
        }
        self.window_start = Some(now);
    }

    /// What this participant publishes, bit/s on the wire: waveforms and numerics.
    pub fn bps(&self) -> u64 {
        self.bps[0] + self.bps[1]
    }

    /// The still images it is sending now, bit/s on the wire. Reserved before video too, while
    /// a transfer lasts: an image is paced by its end-to-end window and SCTP's congestion
    /// control, so camera video filling the link left it the rest (a 1 MB photo took 62-63 s
    /// over 200 kbit/s). Reserved, the estimate's share it took shows in its measured rate,
    /// the camera steps down, and the window grows into what the camera gave up. Not counted
    /// against the waveforms (`update_wave`): vitals keep their place.
    pub fn image_bps(&self) -> u64 {
        self.bps[2]
    }

    /// Whether this subscriber is sent waveforms, from its link estimate (str0m's, smoothed over
    /// 3 s), what the allocator reserved for it (audio plus all the vitals it receives) and what
    /// its allocation says of the link (`link`). Vitals come before video, so while video flows
    /// the waveforms do; and an estimate over a link carrying only audio and vitals says little
    /// (str0m's stays near 1.5 times what is acknowledged). Off once the link has been thin
    /// with the estimate below the reservation for [`WAVE_OFF_AFTER`]; on again once video
    /// flows, or once the estimate has stayed 25 % above the reservation for as long. A video
    /// paused for another reason (its layer gone, an outage) proves nothing about the link:
    /// with "on again when no longer thin" a viewer behind 60 kbit/s got a burst of waveform
    /// 3 s after they stopped (CI, `vitals.test.mjs`). Numerics are always sent.
    /// True when it changed.
    pub fn update_wave(
        &mut self,
        now: Instant,
        estimate_bps: Option<u64>,
        link: WaveLink,
        reserved_bps: u64,
    ) -> bool {
        let Some(estimate) = estimate_bps else {
            return false;
        };
        let was = self.wave_off;
        let held = |since: &mut Option<Instant>, cond: bool| {
            if !cond {
                *since = None;
                return false;
            }
            let t = *since.get_or_insert(now);
            now.saturating_duration_since(t) >= WAVE_OFF_AFTER
        };
        if !self.wave_off {
            self.above_since = None;
            if held(&mut self.below_since, link.thin && estimate < reserved_bps) {
                self.wave_off = true;
            }
        } else {
            self.below_since = None;
            let roomy = held(
                &mut self.above_since,
                estimate as f64 >= 1.25 * reserved_bps as f64,
            );
            if link.video_flows || roomy {
                self.wave_off = false;
                self.above_since = None;
            }
        }
        was != self.wave_off
    }

    /// Counts a frame its SCTP send buffer refused; true the first time (log that one).
    pub fn refused(&mut self) -> bool {
        self.refused += 1;
        self.refused == 1
    }

    /// Whether waveforms are forwarded to this subscriber now.
    pub fn wave_ok(&self) -> bool {
        !self.wave_off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_checks_version_kind_size_and_text() {
        assert_eq!(check_frame(Lane::Wave, true, &[1, 2, 0, 0]), Ok(()));
        assert_eq!(check_frame(Lane::Numerics, true, &[1, 1]), Ok(()));
        assert_eq!(
            check_frame(Lane::Wave, true, &[2, 2, 0]),
            Err(FrameError::Version)
        );
        assert_eq!(
            check_frame(Lane::Numerics, true, &[1, 2, 0]),
            Err(FrameError::Kind),
            "a waveform on the reliable channel"
        );
        assert_eq!(
            check_frame(Lane::Wave, true, &[1, 1 | FORWARDED]),
            Err(FrameError::Kind),
            "a client cannot pass a frame off as forwarded"
        );
        assert_eq!(
            check_frame(Lane::Wave, true, &[1]),
            Err(FrameError::TooShort)
        );
        assert_eq!(
            check_frame(Lane::Wave, true, &[]),
            Err(FrameError::TooShort)
        );
        assert_eq!(
            check_frame(Lane::Wave, false, &[1, 2]),
            Err(FrameError::Text)
        );
        let mut big = vec![1, 2];
        big.resize(MAX_FRAME + 1, 0);
        assert_eq!(
            check_frame(Lane::Wave, true, &big),
            Err(FrameError::TooLong)
        );
        big.truncate(MAX_FRAME);
        assert_eq!(check_frame(Lane::Wave, true, &big), Ok(()));
        // Images: kinds 3 to 6, chunks up to 16 KiB, only on their channel.
        for kind in 3..=6 {
            assert_eq!(check_frame(Lane::Image, true, &[1, kind, 0]), Ok(()));
            assert_eq!(
                check_frame(Lane::Numerics, true, &[1, kind, 0]),
                Err(FrameError::Kind)
            );
        }
        assert_eq!(
            check_frame(Lane::Image, true, &[1, 2, 0]),
            Err(FrameError::Kind)
        );
        let mut chunk = vec![1, 4];
        chunk.resize(MAX_IMAGE_FRAME, 0);
        assert_eq!(check_frame(Lane::Image, true, &chunk), Ok(()));
        chunk.push(0);
        assert_eq!(
            check_frame(Lane::Image, true, &chunk),
            Err(FrameError::TooLong)
        );
    }

    #[test]
    fn forwarded_frame_names_the_source() {
        let mut out = vec![9; 50];
        forwarded_frame("p-ab", &[1, 2, 7, 8, 9], &mut out);
        assert_eq!(out, [1, 2 | FORWARDED, 4, b'p', b'-', b'a', b'b', 7, 8, 9]);
        forwarded_frame("p-ab", &[1, 1], &mut out);
        assert_eq!(out, [1, 1 | FORWARDED, 4, b'p', b'-', b'a', b'b']);
    }

    #[test]
    fn rate_is_measured_and_decays() {
        let t0 = Instant::now();
        let mut v = PeerVitals::default();
        // 25 waveform frames of 60 bytes a second (500 Hz in 40 ms frames), 1 numerics frame.
        for ms in (0..1000).step_by(40) {
            v.record(t0 + Duration::from_millis(ms), Lane::Wave, 60);
        }
        v.record(t0 + Duration::from_millis(500), Lane::Numerics, 40);
        v.roll(t0 + Duration::from_millis(1000));
        let expected = (25 * (60 + WIRE_OVERHEAD) + (40 + WIRE_OVERHEAD)) as u64 * 8;
        assert_eq!(v.bps(), expected, "{} bit/s", v.bps());
        assert!((25_000..40_000).contains(&v.bps()), "a few tens of kbit/s");
        // Silence: halves per window.
        v.roll(t0 + Duration::from_millis(2000));
        assert_eq!(v.bps(), expected / 2);
    }

    #[test]
    fn images_are_measured_apart_from_the_vitals() {
        let t0 = Instant::now();
        let mut v = PeerVitals::default();
        // 16 KiB chunks, one every 0.8 s: about 160 kbit/s of image.
        v.record(t0, Lane::Image, 16_384);
        v.record(t0 + Duration::from_millis(800), Lane::Image, 16_384);
        v.record(t0 + Duration::from_millis(900), Lane::Wave, 60);
        v.roll(t0 + Duration::from_millis(1000));
        assert_eq!(v.image_bps(), 2 * (16_384 + WIRE_OVERHEAD) as u64 * 8);
        assert_eq!(v.bps(), (60 + WIRE_OVERHEAD) as u64 * 8, "vitals alone");
        // The transfer ends: its reservation fades.
        v.roll(t0 + Duration::from_millis(2000));
        v.roll(t0 + Duration::from_millis(3000));
        assert_eq!(v.image_bps(), 2 * (16_384 + WIRE_OVERHEAD) as u64 * 8 / 4);
    }

    #[test]
    fn an_image_is_in_flight_from_its_start_to_its_end_or_silence() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut v = PeerVitals::default();
        assert!(!v.image_in_flight(t0));
        v.image_frame(at(0), KIND_IMAGE_START);
        assert!(v.image_in_flight(at(0)), "from the start, before any chunk");
        v.image_frame(at(1500), KIND_IMAGE_CHUNK);
        assert!(v.image_in_flight(at(1500) + IMAGE_IDLE - Duration::from_millis(1)));
        assert!(
            !v.image_in_flight(at(1500) + IMAGE_IDLE),
            "a sender gone quiet: over"
        );
        v.image_frame(at(20_000), KIND_IMAGE_CHUNK);
        assert!(v.image_in_flight(at(20_000)));
        v.image_frame(at(20_100), 6);
        assert!(v.image_in_flight(at(20_100)), "an ack is no transfer");
        v.image_frame(at(20_200), KIND_IMAGE_END);
        assert!(!v.image_in_flight(at(20_200)), "ended");
    }

    #[test]
    fn an_image_in_flight_is_reserved_before_its_rate_shows() {
        let ms = |n| Some(Duration::from_millis(n));
        // Not in flight, or no estimate yet: the measured rate only.
        assert_eq!(
            image_reservation(30_000, false, Some(200_000), ms(300), 40_000),
            30_000
        );
        assert_eq!(
            image_reservation(30_000, true, None, ms(300), 40_000),
            30_000
        );
        // A thin link: what the estimate leaves beside audio and vitals (the window could
        // carry 1.7 Mbit/s per 300 ms round trip).
        assert_eq!(
            image_reservation(10_000, true, Some(200_000), ms(300), 40_000),
            190_000 - 40_000
        );
        // A good link: at most IMAGE_FLOOR_MAX_BPS, the camera keeps the rest.
        assert_eq!(
            image_reservation(0, true, Some(5_000_000), ms(20), 40_000),
            IMAGE_FLOOR_MAX_BPS
        );
        // A long round trip: what the window carries per round trip.
        let r = image_reservation(0, true, Some(5_000_000), ms(2000), 40_000);
        assert_eq!(r, IMAGE_WINDOW * 8 / 2);
        // Measured above the floor: the measured rate.
        assert_eq!(
            image_reservation(900_000, true, Some(5_000_000), ms(20), 40_000),
            900_000
        );
        // Audio and vitals alone past the estimate: nothing more than measured.
        assert_eq!(
            image_reservation(5_000, true, Some(40_000), ms(300), 60_000),
            5_000
        );
    }

    #[test]
    fn waveforms_stop_below_the_reservation_and_resume_with_margin() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let thin = WaveLink {
            thin: true,
            video_flows: false,
        };
        let flowing = WaveLink {
            thin: false,
            video_flows: true,
        };
        let mut v = PeerVitals::default();
        assert!(v.wave_ok());
        assert!(!v.update_wave(at(0), None, thin, 80_000));
        assert!(v.wave_ok(), "no estimate yet: sent");
        // Below the reservation but video still flows (not thin): sent, however long.
        assert!(!v.update_wave(at(0), Some(40_000), flowing, 80_000));
        assert!(!v.update_wave(at(3000), Some(40_000), flowing, 80_000));
        assert!(v.wave_ok());
        // Thin for less than WAVE_OFF_AFTER changes nothing.
        assert!(!v.update_wave(at(3000), Some(40_000), thin, 80_000));
        assert!(!v.update_wave(at(4500), Some(70_000), thin, 80_000));
        assert!(!v.update_wave(at(4700), Some(85_000), thin, 80_000));
        assert!(v.wave_ok());
        // Thin and below for 2 s: off.
        assert!(!v.update_wave(at(5000), Some(70_000), thin, 80_000));
        assert!(
            v.update_wave(at(7000), Some(70_000), thin, 80_000),
            "a change"
        );
        assert!(!v.wave_ok());
        assert!(!v.update_wave(at(7200), Some(90_000), thin, 80_000));
        assert!(!v.wave_ok(), "not yet 25 % above");
        // 25 % above, but not yet for 2 s: still off.
        assert!(!v.update_wave(at(7400), Some(100_000), thin, 80_000));
        assert!(!v.update_wave(at(8400), Some(100_000), thin, 80_000));
        assert!(!v.wave_ok(), "a moment above is not room");
        // A dip starts the wait again.
        assert!(!v.update_wave(at(8600), Some(90_000), thin, 80_000));
        assert!(!v.update_wave(at(9000), Some(100_000), thin, 80_000));
        assert!(!v.update_wave(at(10_900), Some(100_000), thin, 80_000));
        assert!(v.update_wave(at(11_000), Some(100_000), thin, 80_000));
        assert!(v.wave_ok());
        // Off again, then video resumes: on at once.
        v.update_wave(at(12_000), Some(50_000), thin, 80_000);
        assert!(v.update_wave(at(14_000), Some(50_000), thin, 80_000));
        assert!(!v.wave_ok());
        assert!(v.update_wave(at(14_200), Some(50_000), flowing, 80_000));
        assert!(v.wave_ok());
    }

    #[test]
    fn a_video_paused_for_another_reason_does_not_bring_waveforms_back() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let thin = WaveLink {
            thin: true,
            video_flows: false,
        };
        let mut v = PeerVitals::default();
        v.update_wave(at(0), Some(50_000), thin, 80_000);
        assert!(v.update_wave(at(2000), Some(50_000), thin, 80_000));
        assert!(!v.wave_ok());
        // The paused video's layer stopped at the publisher (no longer paused for bandwidth,
        // so not thin), and nothing flows: the link is no better than it was.
        let gone = WaveLink {
            thin: false,
            video_flows: false,
        };
        for i in 0..20 {
            assert!(!v.update_wave(at(2000 + 500 * i), Some(60_000), gone, 80_000));
        }
        assert!(!v.wave_ok());
    }
}
