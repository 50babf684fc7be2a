// What the driver samples in the pages, the same for every configuration: the init script that
// records every RTCPeerConnection a page creates, and the per-second getStats summaries.

/**
 * Runs in every page before its own scripts: records each RTCPeerConnection in `window.__pcs`.
 * In subscriber pages it also polls getStats every 100 ms until a video frame is decoded and
 * keeps that instant (`window.__firstFrameAt`, Date.now() milliseconds).
 * @param {{subscriber: boolean}} opts
 */
export function initScript({ subscriber }) {
  const w = /** @type {any} */ (window);
  const Orig = w.RTCPeerConnection;
  w.__pcs = [];
  w.__firstFrameAt = null;
  class RecordedPeerConnection extends Orig {
    constructor(/** @type {any[]} */ ...args) {
      super(...args);
      w.__pcs.push(this);
    }
  }
  w.RTCPeerConnection = RecordedPeerConnection;
  if (!subscriber) return;
  const timer = setInterval(async () => {
    for (const pc of w.__pcs) {
      if (pc.connectionState === 'closed') continue;
      let decoded = false;
      (await pc.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded || 0) > 0) decoded = true;
      });
      if (decoded && w.__firstFrameAt === null) {
        w.__firstFrameAt = Date.now();
        clearInterval(timer);
      }
    }
  }, 100);
}

/** Runs in a subscriber page: what it receives now, summed over its peer connections. */
export async function subscriberStats() {
  const w = /** @type {any} */ (window);
  /** @type {any} */
  let video = null;
  /** @type {any} */
  let audio = null;
  let inboundBytes = 0;
  let transportBytes = 0;
  let state = null;
  for (const pc of w.__pcs) {
    if (pc.connectionState === 'closed') continue;
    state = pc.connectionState;
    (await pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'transport') transportBytes += s.bytesReceived || 0;
      if (s.type !== 'inbound-rtp') return;
      inboundBytes += s.bytesReceived || 0;
      if (s.kind === 'video' && (!video || (s.bytesReceived || 0) > video.bytesReceived)) video = s;
      if (s.kind === 'audio' && (!audio || (s.totalSamplesReceived || 0) > audio.totalSamplesReceived)) audio = s;
    });
  }
  return {
    state,
    pcs: w.__pcs.length,
    first_frame_at: w.__firstFrameAt,
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
  /** @type {{rid: string, height: number, fps: number, limitation: string}[]} */
  const layers = [];
  for (const pc of w.__pcs) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'outbound-rtp') bytes += s.bytesSent || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        layers.push({ rid: s.rid || '', height: s.frameHeight || 0, fps: Math.round(s.framesPerSecond || 0), limitation: s.qualityLimitationReason || '' });
      }
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) available = s.availableOutgoingBitrate;
    });
  }
  layers.sort((a, b) => a.rid.localeCompare(b.rid));
  return { bytes_sent: bytes, available_kbps: available === null ? null : Math.round(available / 1000), layers };
}
