// What the clean-link ramp measurement (clean.mjs) runs inside the pages: a recorder of each
// received video's ramp (first frame, first second at 360p, 540p, 720p), the 500 ms sample
// (received videos and the quality badge of every tile), and the two sides of a direct call.

/** Heights the ramp recorder notes the first frame at (or above). */
export const RAMP_HEIGHTS = [360, 540, 720];

/**
 * Init script: records every RTCPeerConnection in `window.__pcs` and, every 100 ms, for each
 * received video (keyed by mid), the first instant (Date.now() ms) a frame was decoded and, for
 * each of `heights`, the start of the first second in which every poll that saw new frames saw
 * them at least that tall (a keyframe or two of a higher layer that the server takes back at
 * once is not a ramp): `window.__ramp[mid] = {first_frame: ms, at: {360: ms, ...}}`.
 * @param {{heights: number[]}} opts
 */
export function rampRecorder({ heights }) {
  const w = /** @type {any} */ (window);
  const Orig = w.RTCPeerConnection;
  w.__pcs = [];
  /** @type {Record<string, {first_frame: number|null, at: Record<string, number>, since: Record<string, number|null>, frames: number}>} */
  const ramp = {};
  w.__ramp = ramp;
  class RecordedPeerConnection extends Orig {
    constructor(/** @type {any[]} */ ...args) {
      super(...args);
      w.__pcs.push(this);
    }
  }
  w.RTCPeerConnection = RecordedPeerConnection;
  let polling = false;
  setInterval(async () => {
    if (polling) return;
    polling = true;
    try {
      const now = Date.now();
      for (const pc of w.__pcs) {
        if (pc.connectionState === 'closed') continue;
        (await pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !s.mid) return;
          const r = (ramp[s.mid] ??= { first_frame: null, at: {}, since: {}, frames: 0 });
          const frames = s.framesDecoded || 0;
          if (frames > r.frames) {
            if (r.first_frame === null) r.first_frame = now;
            for (const h of heights) {
              if (h in r.at) continue;
              if ((s.frameHeight || 0) < h) {
                r.since[h] = null;
                continue;
              }
              const since = (r.since[h] ??= now);
              if (now - since >= 1000) r.at[h] = since;
            }
          }
          r.frames = frames;
        });
      }
    } finally {
      polling = false;
    }
  }, 100);
}

/**
 * Runs in a page every 500 ms: each received video (who sends it, height, fps, frames decoded,
 * bytes), each own encoding (rid, height, fps, bytes, quality limitation) and each tile's quality
 * badge (kham pages: `data-quality` on `[data-testid="tile"]`),
 * plus the ramp recorder's notes. Senders are named by the kham client's participant map; in a
 * direct call there is one, `peer`.
 */
export async function rampSample() {
  const w = /** @type {any} */ (window);
  const kham = w.__kham;
  const nameOf = (/** @type {string|null} */ id) => {
    if (!kham || !id) return null;
    if (kham.me && kham.me.id === id) return kham.me.name;
    const p = kham.participants.get(id);
    return p ? p.name : id;
  };
  const fromOf = (/** @type {string} */ mid) => (kham ? nameOf(kham.participantForMid(mid)) || `mid ${mid}` : 'peer');
  /** @type {any[]} */
  const videos = [];
  /** What the page's own encoders send (CPU or bandwidth limits show here). @type {any[]} */
  const sent = [];
  for (const pc of w.__pcs) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        sent.push({ rid: s.rid || '', height: s.frameHeight || 0, fps: s.framesPerSecond || 0, bytes: s.bytesSent || 0, limitation: s.qualityLimitationReason || '' });
      }
      if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !s.mid) return;
      videos.push({
        mid: s.mid, from: fromOf(s.mid), height: s.frameHeight || 0, fps: s.framesPerSecond || 0,
        frames: s.framesDecoded || 0, bytes: s.bytesReceived || 0,
      });
    });
  }
  const badges = [...document.querySelectorAll('[data-testid="tile"]')].map((el) => {
    const tile = /** @type {HTMLElement} */ (el);
    return { of: nameOf(tile.dataset.participantId || null), self: tile.classList.contains('self'), quality: tile.dataset.quality || null };
  });
  /** @type {Record<string, any>} */
  const ramp = {};
  for (const [mid, r] of Object.entries(w.__ramp || {})) ramp[mid] = { ...r, from: fromOf(mid) };
  return { videos, sent, badges, ramp };
}

/**
 * Runs in both pages of a direct call first: camera (720p, as the kham pages ask) and
 * microphone, a peer connection sending both, a <video> for the other side.
 */
export async function directPrepare() {
  const w = /** @type {any} */ (window);
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  const pc = new RTCPeerConnection();
  w.__pc = pc;
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.style.width = '1280px';
  video.style.height = '720px';
  document.body.append(video);
  pc.addEventListener('track', (ev) => {
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  });
}

/**
 * Runs in a direct-call page: applies the other side's description if given (an offer gets an
 * answer, nothing gets an offer) and resolves with the own one once its candidates are gathered
 * (no trickle: host candidates on this machine come at once).
 * @param {{type: 'offer'|'answer', sdp: string}|null} remote
 */
export async function directSignal(remote) {
  const pc = /** @type {any} */ (window).__pc;
  if (remote) await pc.setRemoteDescription(remote);
  if (remote && remote.type === 'answer') return null;
  await pc.setLocalDescription(remote ? await pc.createAnswer() : await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve(undefined);
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(undefined); });
    setTimeout(resolve, 3000);
  });
  return { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
}
