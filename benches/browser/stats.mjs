// What the driver samples in the pages, the same for every configuration: the init script that
// records every RTCPeerConnection a page creates, and the per-second getStats summaries.

/**
 * Runs in every page before its own scripts: records each RTCPeerConnection in `window.__pcs`,
 * and the first instant (Date.now() milliseconds) of each call-setup stage in `window.__stages`:
 * `pc` (first peer connection made), `local_offer` / `local_answer` (setLocalDescription done:
 * the SDP can go out), `remote_offer` / `remote_answer` (setRemoteDescription called),
 * `ice_connected` (iceConnectionState connected or completed), `connected` (connectionState
 * connected: ICE and DTLS done). Subscriber pages also poll getStats every 50 ms until a video
 * frame is decoded: `first_rtp` (video bytesReceived > 0), `first_keyframe` (framesReceived > 0:
 * the first complete frame, which a decoder can only start on if it is a keyframe) and
 * `first_frame` (framesDecoded > 0), also kept as `window.__firstFrameAt`.
 * `rewrite` ([from, to]): remote descriptions get their candidate address `from` replaced by
 * `to` (kham's subscriber page reaches its own relay, not the publisher's: configs/kham.mjs).
 * `window.__notePaths(report)` keeps, per candidate pair, the most bytes seen (for
 * `candidatePaths`: a connection that failed is gone from getStats at the end).
 * @param {{subscriber: boolean, rewrite?: [string, string]|null}} opts
 */
export function initScript({ subscriber, rewrite = null }) {
  const w = /** @type {any} */ (window);
  const Orig = w.RTCPeerConnection;
  w.__pcs = [];
  w.__firstFrameAt = null;
  /** @type {Record<string, {local: string|null, remote: string|null, bytes_sent: number, bytes_received: number}>} */
  const paths = {};
  w.__paths = paths;
  w.__notePaths = (/** @type {RTCStatsReport} */ report) => {
    const addr = (/** @type {string} */ id) => {
      const c = report.get(id);
      return c && c.address ? `${c.address}:${c.port}` : null;
    };
    report.forEach((/** @type {any} */ s) => {
      if (s.type !== 'candidate-pair' || (s.bytesSent || 0) + (s.bytesReceived || 0) === 0) return;
      const local = addr(s.localCandidateId);
      const remote = addr(s.remoteCandidateId);
      const p = (paths[`${s.transportId} ${s.id}`] ??= { local, remote, bytes_sent: 0, bytes_received: 0 });
      p.local = local ?? p.local;
      p.remote = remote ?? p.remote;
      p.bytes_sent = Math.max(p.bytes_sent, s.bytesSent || 0);
      p.bytes_received = Math.max(p.bytes_received, s.bytesReceived || 0);
    });
  };
  /** @type {Record<string, number>} */
  const stages = {};
  w.__stages = stages;
  const mark = (/** @type {string} */ name) => { if (!(name in stages)) stages[name] = Date.now(); };
  class RecordedPeerConnection extends Orig {
    constructor(/** @type {any[]} */ ...args) {
      super(...args);
      w.__pcs.push(this);
      mark('pc');
      this.addEventListener('iceconnectionstatechange', () => {
        if (this.iceConnectionState === 'connected' || this.iceConnectionState === 'completed') mark('ice_connected');
      });
      this.addEventListener('connectionstatechange', () => { if (this.connectionState === 'connected') mark('connected'); });
    }

    async setLocalDescription(/** @type {any[]} */ ...args) {
      await super.setLocalDescription(...args);
      if (this.localDescription) mark(`local_${this.localDescription.type}`);
    }

    async setRemoteDescription(/** @type {any[]} */ ...args) {
      const desc = args[0];
      if (desc && desc.type) mark(`remote_${desc.type}`);
      if (rewrite && desc && typeof desc.sdp === 'string') {
        const [from, to] = rewrite;
        const sdp = desc.sdp.split('\r\n').map((/** @type {string} */ l) => (l.startsWith('a=candidate:') ? l.split(` ${from} `).join(` ${to} `) : l)).join('\r\n');
        args[0] = { type: desc.type, sdp };
      }
      return super.setRemoteDescription(...args);
    }
  }
  w.RTCPeerConnection = RecordedPeerConnection;
  if (!subscriber) return;
  let polling = false;
  const timer = setInterval(async () => {
    if (polling) return;
    polling = true;
    try {
      for (const pc of w.__pcs) {
        if (pc.connectionState === 'closed') continue;
        (await pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
          if ((s.bytesReceived || 0) > 0) mark('first_rtp');
          if ((s.framesReceived || 0) > 0) mark('first_keyframe');
          if ((s.framesDecoded || 0) > 0) mark('first_frame');
        });
      }
    } finally {
      polling = false;
    }
    if ('first_frame' in stages) {
      w.__firstFrameAt = stages.first_frame;
      clearInterval(timer);
    }
  }, 50);
}

/**
 * Runs in a page: every ICE candidate pair that carried data (DTLS, RTP, RTCP: candidate-pair
 * byte counters leave STUN out) over the run, with the addresses at both ends, for the link
 * check (benches/src/browser/links.rs). An address Chromium does not expose (a peer-reflexive
 * remote) is null.
 */
export async function candidatePaths() {
  const w = /** @type {any} */ (window);
  for (const pc of w.__pcs) {
    try {
      w.__notePaths(await pc.getStats());
    } catch {
      // closed: what it carried was noted by the samples
    }
  }
  return Object.values(w.__paths);
}

/**
 * Runs in a subscriber page: what it receives now, summed over its peer connections. A
 * connection that closed (a call that died, a client that reconnected) keeps counting with its
 * last figures (`window.__lastStats`), so a dead call's totals do not fall to zero.
 */
export async function subscriberStats() {
  const w = /** @type {any} */ (window);
  /** @type {Map<any, {inbound: number, transport: number, video: any, audio: any}>} */
  const last = (w.__lastStats ??= new Map());
  /** @type {any} */
  let video = null;
  /** @type {any} */
  let audio = null;
  let inboundBytes = 0;
  let transportBytes = 0;
  let state = null;
  for (const pc of w.__pcs) {
    let seen = last.get(pc);
    if (pc.connectionState !== 'closed') {
      state = pc.connectionState;
      const report = await pc.getStats();
      w.__notePaths(report);
      seen = { inbound: 0, transport: 0, video: null, audio: null };
      const now = seen;
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'transport') now.transport += s.bytesReceived || 0;
        if (s.type !== 'inbound-rtp') return;
        now.inbound += s.bytesReceived || 0;
        if (s.kind === 'video' && (!now.video || (s.bytesReceived || 0) > now.video.bytesReceived)) now.video = s;
        if (s.kind === 'audio' && (!now.audio || (s.totalSamplesReceived || 0) > now.audio.totalSamplesReceived)) now.audio = s;
      });
      last.set(pc, seen);
    }
    if (!seen) continue;
    inboundBytes += seen.inbound;
    transportBytes += seen.transport;
    // The streams of an open connection first (a reconnected call's), else the dead one's.
    const open = pc.connectionState !== 'closed';
    if (seen.video && (!video || (open && !video.open) || (open === video.open && (seen.video.bytesReceived || 0) > video.s.bytesReceived))) video = { s: seen.video, open };
    if (seen.audio && (!audio || (open && !audio.open) || (open === audio.open && (seen.audio.totalSamplesReceived || 0) > audio.s.totalSamplesReceived))) audio = { s: seen.audio, open };
  }
  video = video && video.s;
  audio = audio && audio.s;
  return {
    state,
    pcs: w.__pcs.length,
    first_frame_at: w.__firstFrameAt,
    stages: w.__stages,
    inbound_bytes: inboundBytes,
    transport_bytes: transportBytes,
    video: video && {
      frames_decoded: video.framesDecoded || 0,
      fps: video.framesPerSecond || 0,
      height: video.frameHeight || 0,
      width: video.frameWidth || 0,
      freeze_count: video.freezeCount || 0,
      freezes_s: video.totalFreezesDuration || 0,
      jitter_buffer_delay_s: video.jitterBufferDelay || 0,
      jitter_buffer_emitted: video.jitterBufferEmittedCount || 0,
      packets_lost: video.packetsLost || 0,
      packets: video.packetsReceived || 0,
      bytes: video.bytesReceived || 0,
      // Loss repair: FEC packets received and packets they recovered, retransmissions
      // received, NACKs sent.
      fec_packets: video.fecPacketsReceived || 0,
      fec_recovered: Math.max(0, (video.fecPacketsReceived || 0) - (video.fecPacketsDiscarded || 0)),
      rtx_packets: video.retransmittedPacketsReceived || 0,
      nacks: video.nackCount || 0,
      plis: video.pliCount || 0,
      keyframes: video.keyFramesDecoded || 0,
      frames_dropped: video.framesDropped || 0,
    },
    audio: audio && {
      concealed: audio.concealedSamples || 0,
      samples: audio.totalSamplesReceived || 0,
      jitter_buffer_delay_s: audio.jitterBufferDelay || 0,
      jitter_buffer_emitted: audio.jitterBufferEmittedCount || 0,
      packets_lost: audio.packetsLost || 0,
      packets: audio.packetsReceived || 0,
      bytes: audio.bytesReceived || 0,
    },
  };
}

/** Runs in a publisher page: what its video encoders send now. */
export async function publisherStats() {
  const w = /** @type {any} */ (window);
  let bytes = 0;
  /** @type {number|null} */
  let available = null;
  /** @type {{rid: string, height: number, fps: number, limitation: string, keyframes: number, plis: number}[]} */
  const layers = [];
  for (const pc of w.__pcs) {
    if (pc.connectionState === 'closed') continue;
    const report = await pc.getStats();
    w.__notePaths(report);
    report.forEach((/** @type {any} */ s) => {
      if (s.type === 'outbound-rtp') bytes += s.bytesSent || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        layers.push({ rid: s.rid || '', height: s.frameHeight || 0, fps: Math.round(s.framesPerSecond || 0), limitation: s.qualityLimitationReason || '', keyframes: s.keyFramesEncoded || 0, plis: s.pliCount || 0 });
      }
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) available = s.availableOutgoingBitrate;
    });
  }
  layers.sort((a, b) => a.rid.localeCompare(b.rid));
  return { bytes_sent: bytes, available_kbps: available === null ? null : Math.round(available / 1000), layers };
}
