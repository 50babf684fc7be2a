//! One participant's media session: its `Rtc`, the tracks it publishes and receives, and the
//! server-initiated renegotiation that adds and stops receive m-lines.

use std::net::SocketAddr;
use std::time::Instant;

use kham_proto::{MediaKind as WireKind, ParticipantId, TrackInfo};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::TcpType;
use str0m::rtp::{Extension, Ssrc};
use str0m::{Candidate, Rtc};

use crate::adapt::{Adaptation, SubscriberAdapt};
use crate::error::SfuError;
use crate::stats::{PeerCounters, STATS_INTERVAL};
use crate::track::{OutState, TrackIn, TrackOut};

/// What a participant may do with media (from its token's grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub publish: bool,
    pub subscribe: bool,
    /// Sends and receives vital signs (`vitals.rs`): the token's `health_data` grant.
    pub health_data: bool,
}

pub(crate) struct Peer {
    pub id: ParticipantId,
    pub rtc: Rtc,
    pub perms: Permissions,
    pub tracks_in: Vec<TrackIn>,
    pub tracks_out: Vec<TrackOut>,
    /// SSRC -> (index in tracks_in, layer), filled on first packet of each SSRC.
    pub ssrc_map: Vec<(Ssrc, u8, u8)>,
    pub pending: Option<SdpPendingOffer>,
    /// m-lines of the server offer `pending` answers: the answer may not have more.
    pub pending_m_lines: usize,
    /// m-lines of the session as last negotiated, and how many of them the client brought
    /// (its new offers may add up to `sdp_check::MAX_M_LINES` of its own).
    pub m_lines: usize,
    pub own_m_lines: usize,
    /// Needs polling: input, a write or a timeout reached it since it last returned Timeout.
    pub dirty: bool,
    pub next_timeout: Option<Instant>,
    pub connected: bool,
    /// Where its media goes now (`stats::MediaPath`), from the last transmit.
    pub path: Option<crate::stats::MediaPath>,
    /// Dead: ICE consent lost or str0m failed. Removed by the room after it reports the loss.
    pub lost: bool,
    /// What this participant receives, decided from its estimate.
    pub adapt: SubscriberAdapt,
    /// Figures for operators (`stats.rs`).
    pub counters: PeerCounters,
    /// The connection quality shown to the room (`quality.rs`).
    pub quality: crate::quality::Tracker,
    /// The last `video_state` sent to this subscriber (`notify.rs`).
    pub video_states: Vec<kham_proto::VideoState>,
    /// Bad reports from this participant already logged (log once), bits of [`ViewProblem`].
    pub logged: u8,
    /// The estimator was restarted once video started flowing to this subscriber (`room.rs`).
    pub bwe_restarted: bool,
    /// str0m's ICE agent is `Disconnected` (no consent check for 15 s); it comes back by itself
    /// when checks arrive again (`reconnect.rs`).
    pub ice_down: bool,
    /// Media stopped at this time and has not come back (`reconnect.rs`).
    pub reconnecting_since: Option<std::time::Instant>,
    /// An ICE restart goes into the next server offer.
    pub restart_wanted: bool,
    /// The outstanding server offer carries an ICE restart (a request now joins it).
    pub restart_offered: bool,
    /// An ICE restart was negotiated: the estimator starts over when media is back (the route
    /// may be a different network).
    pub restarted: bool,
    /// Its vital-sign data channels (`vitals.rs`).
    pub vitals: crate::vitals::PeerVitals,
    /// The video m-lines the client last named screen shares (`screen.rs`).
    pub screen_mids: Vec<str0m::media::Mid>,
}

/// Something wrong in a participant's `video_view`, logged once per participant.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum ViewProblem {
    AbsurdSize = 1,
    NonexistentLayer = 2,
    UnknownMid = 4,
}

impl Peer {
    /// Marks a problem as logged; true the first time.
    pub fn log_once(&mut self, what: ViewProblem) -> bool {
        let bit = what as u8;
        let first = self.logged & bit == 0;
        self.logged |= bit;
        first
    }
}

impl Peer {
    pub fn new(
        now: Instant,
        id: ParticipantId,
        perms: Permissions,
        candidates: &[SocketAddr],
        tcp_candidates: &[SocketAddr],
        adaptation: &Adaptation,
    ) -> Result<Self, SfuError> {
        let mut rtc = Rtc::builder()
            .enable_bwe(adaptation.initial_estimate())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            // RED folded onto Opus: sent to subscribers with loss (red.rs), accepted from
            // publishers whose browser sends it.
            .enable_opus(true, true)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(STATS_INTERVAL))
            // The minimum playout delay a subscriber's browser needs for NACK repairs
            // (`repair_delay.rs`); id 5 as Chromium offers it.
            .set_extension(5, Extension::PlayoutDelay)
            // Room for several image windows beside the vital signs (`vitals::SEND_BUFFER`).
            .set_sctp_max_buffered_amount(crate::vitals::SEND_BUFFER)
            .build(now);
        for addr in candidates {
            let c = Candidate::host(*addr, "udp").map_err(|e| SfuError::Input(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        // Passive: the browser connects (Chromium's own TCP candidates are active, and Firefox
        // takes only passive ones). Its priority is below UDP's, so UDP wins where it works.
        for addr in tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| SfuError::Input(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        Ok(Peer {
            id,
            rtc,
            perms,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            ssrc_map: Vec::new(),
            pending: None,
            pending_m_lines: 0,
            m_lines: 0,
            own_m_lines: 0,
            dirty: true,
            next_timeout: None,
            connected: false,
            path: None,
            lost: false,
            adapt: SubscriberAdapt::new(adaptation),
            counters: PeerCounters::default(),
            quality: Default::default(),
            video_states: Vec::new(),
            logged: 0,
            bwe_restarted: false,
            ice_down: false,
            reconnecting_since: None,
            restart_wanted: false,
            restart_offered: false,
            restarted: false,
            vitals: Default::default(),
            screen_mids: Vec::new(),
        })
    }

    /// Accepts the client's offer (its first, or a new one on this session: `sdp_check` has
    /// passed it) and returns the answer SDP.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        let m_lines = crate::sdp_check::count_m_lines(sdp);
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::SdpParse(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::SdpRejected(e.to_string()))?;
        self.m_lines = self.m_lines.max(m_lines);
        if self.own_m_lines == 0 {
            self.own_m_lines = m_lines;
        }
        self.dirty = true;
        Ok(answer.to_sdp_string())
    }

    /// Applies the client's answer to our last offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), SfuError> {
        if self.pending.is_none() {
            return Err(SfuError::NoPendingOffer);
        }
        // str0m would add the m-lines an answer has beyond the offer's: refuse them unparsed.
        crate::sdp_check::check_answer(sdp, self.pending_m_lines)?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::SdpParse(e.to_string()))?;
        let pending = self.pending.take().ok_or(SfuError::NoPendingOffer)?;
        self.restart_offered = false;
        self.m_lines = self.m_lines.max(self.pending_m_lines);
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| SfuError::SdpRejected(e.to_string()))?;
        for t in &mut self.tracks_out {
            if let OutState::Negotiating(m) = t.state {
                t.state = OutState::Open(m);
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, OutState::NegotiatingStop(_)));
        self.dirty = true;
        Ok(())
    }

    /// If receive m-lines must be added or stopped and no offer is outstanding, builds the next
    /// server offer. Returns the SDP and the track mapping to send with it.
    pub fn negotiate_if_needed(&mut self) -> Option<(String, Vec<TrackInfo>)> {
        if self.pending.is_some() || self.lost {
            return None;
        }
        self.tracks_out
            .retain(|t| !(t.gone && t.state == OutState::ToOpen));
        for t in &mut self.tracks_out {
            if let OutState::Open(m) = t.state
                && t.gone
            {
                t.state = OutState::ToStop(m);
            }
        }
        if !self.restart_wanted
            && !self
                .tracks_out
                .iter()
                .any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)))
        {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        if std::mem::take(&mut self.restart_wanted) {
            // New ICE credentials for the client; the host candidates stay. DTLS and SRTP are
            // kept, and media goes on to the old address until checks nominate a new one.
            change.ice_restart(true);
            self.restarted = true;
            self.restart_offered = true;
        }
        for t in &mut self.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    // msid stream id = publisher id, so the browser groups a participant's tracks.
                    let mid = change.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(t.publisher.to_string()),
                        None,
                        None,
                    );
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(m) => {
                    change.stop_media(m);
                    t.state = OutState::NegotiatingStop(m);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        let sdp = offer.to_sdp_string();
        self.pending_m_lines = crate::sdp_check::count_m_lines(&sdp);
        self.dirty = true;
        Some((sdp, self.track_infos()))
    }

    /// The mid -> participant mapping of every receive m-line.
    pub fn track_infos(&self) -> Vec<TrackInfo> {
        self.tracks_out
            .iter()
            .filter_map(|t| {
                let mid = t.mid()?;
                Some(TrackInfo {
                    mid: mid.to_string(),
                    participant: t.publisher.clone(),
                    kind: if t.kind == MediaKind::Audio {
                        WireKind::Audio
                    } else {
                        WireKind::Video
                    },
                    active: matches!(t.state, OutState::Negotiating(_) | OutState::Open(_)),
                    screen: t.screen,
                })
            })
            .collect()
    }
}
