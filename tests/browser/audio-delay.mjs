// How late a page plays one participant's audio while something else shares its link (issue 16:
// an image to a doctor on a thin link must not break the doctor's audio). Sampled in the page
// every 250 ms from its peer connection (`window.__kham.pc`):
// - playout delay: when the audio receiver last delivered a frame from the participant
//   (`getSynchronizationSources()`: `timestamp`) minus that frame's RTP time (48 kHz). Its
//   absolute value means nothing (the two clocks have different origins), its change is the
//   change of the audio's delay from the sender's capture to the doctor's ears (network queue
//   and jitter buffer together); reported above its median before the transfer;
// - jitter buffer: jitterBufferDelay / jitterBufferEmittedCount of the audio inbound-rtp, over
//   each interval;
// - round trip of the page's selected candidate pair (STUN checks; the server's answers queue
//   behind whatever the page's downlink carries);
// - concealed samples.
// Used by images.test.mjs and benches/browser/image-thin.mjs.

/**
 * Starts sampling `page`'s audio from participant `id`.
 * @param {import('playwright-core').Page} page
 * @param {string} id
 */
export function startAudioProbe(page, id) {
  return page.evaluate((id) => {
    const c = /** @type {any} */ (window).__kham;
    /** @type {any[]} */
    const samples = [];
    const tick = async () => {
      /** @type {any} */
      const s = { t: Date.now() };
      /** @type {Record<string, any>} */
      const byId = {};
      (await c.pc.getStats()).forEach((/** @type {any} */ r) => { byId[r.id] = r; });
      for (const r of Object.values(byId)) {
        if (r.type === 'inbound-rtp' && r.kind === 'audio' && c.participantForMid(r.mid) === id) {
          Object.assign(s, {
            jbDelay: r.jitterBufferDelay, jbEmitted: r.jitterBufferEmittedCount,
            samples: r.totalSamplesReceived, concealed: r.concealedSamples,
          });
        }
        // The participant's camera: its playout delay is the audio's too when it is longer
        // (lip sync), e.g. once kham asks for time for repairs (crates/sfu/src/repair_delay.rs).
        if (r.type === 'inbound-rtp' && r.kind === 'video' && c.participantForMid(r.mid) === id
          && (r.jitterBufferEmittedCount || 0) >= (s.vEmitted || 0)) {
          Object.assign(s, {
            vDelay: r.jitterBufferDelay, vMin: r.jitterBufferMinimumDelay, vEmitted: r.jitterBufferEmittedCount, vNack: r.nackCount,
          });
        }
        if (r.type === 'transport' && byId[r.selectedCandidatePairId]) {
          const p = byId[r.selectedCandidatePairId];
          Object.assign(s, { rtt: p.currentRoundTripTime, rttTotal: p.totalRoundTripTime, rttCount: p.responsesReceived });
        }
      }
      const tr = c.pc.getTransceivers().find((/** @type {RTCRtpTransceiver} */ x) => x.mid
        && x.receiver.track.kind === 'audio' && c.participantForMid(x.mid) === id);
      const src = tr && tr.receiver.getSynchronizationSources()[0];
      if (src) Object.assign(s, { rtp: src.rtpTimestamp, at: src.timestamp });
      samples.push(s);
    };
    const timer = setInterval(() => { tick().catch(() => {}); }, 250);
    /** @type {any} */ (window).__audioProbe = { samples, stop: () => clearInterval(timer) };
  }, id);
}

/**
 * Stops sampling; returns the samples.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<any[]>}
 */
export function stopAudioProbe(page) {
  return page.evaluate(() => {
    const p = /** @type {any} */ (window).__audioProbe;
    p.stop();
    return p.samples;
  });
}

const median = (/** @type {number[]} */ xs) => quantile(xs, 0.5);
function quantile(/** @type {number[]} */ xs, /** @type {number} */ q) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/**
 * Figures per phase: `phases` maps a name to [from, to) in Date.now() milliseconds; the first
 * phase is the reference of the playout delay.
 * @param {any[]} samples
 * @param {Record<string, [number, number]>} phases
 */
export function summarise(samples, phases) {
  // Playout delay, ms, on one unwrapped RTP clock.
  let wraps = 0;
  let last = null;
  for (const s of samples) {
    if (s.rtp === undefined) continue;
    if (last !== null && s.rtp < last - 2 ** 31) wraps += 1;
    last = s.rtp;
    s.delay = s.at - (s.rtp + wraps * 2 ** 32) / 48;
  }
  const names = Object.keys(phases);
  const inPhase = (/** @type {string} */ n) => samples.filter((s) => s.t >= phases[n][0] && s.t < phases[n][1]);
  const ref = median(inPhase(names[0]).filter((s) => s.delay !== undefined).map((s) => s.delay));
  /** @type {Record<string, any>} */
  const out = {};
  for (const n of names) {
    const xs = inPhase(n);
    const added = xs.filter((s) => s.delay !== undefined).map((s) => s.delay - ref);
    const first = xs.find((s) => s.jbEmitted !== undefined);
    const lastS = [...xs].reverse().find((s) => s.jbEmitted !== undefined);
    // Jitter buffer per interval of about a second (4 samples).
    const jb = [];
    for (let i = 4; i < xs.length; i += 4) {
      const a = xs[i - 4];
      const b = xs[i];
      if (b.jbEmitted > a.jbEmitted) jb.push((1000 * (b.jbDelay - a.jbDelay)) / (b.jbEmitted - a.jbEmitted));
    }
    const withV = xs.filter((s) => s.vEmitted !== undefined);
    const v0 = withV[0];
    const v1 = withV[withV.length - 1];
    const vFrames = v0 && v1 ? v1.vEmitted - v0.vEmitted : 0;
    const withRtt = xs.filter((s) => s.rttCount !== undefined);
    const r0 = withRtt[0];
    const r1 = withRtt[withRtt.length - 1];
    out[n] = {
      seconds: (phases[n][1] - phases[n][0]) / 1000,
      playoutP50: median(added),
      playoutP95: quantile(added, 0.95),
      playoutMax: added.length ? Math.max(...added) : NaN,
      jitterBuffer: first && lastS && lastS.jbEmitted > first.jbEmitted
        ? (1000 * (lastS.jbDelay - first.jbDelay)) / (lastS.jbEmitted - first.jbEmitted) : NaN,
      jitterBufferMax: jb.length ? Math.max(...jb) : NaN,
      stunRtt: r0 && r1 && r1.rttCount > r0.rttCount ? (1000 * (r1.rttTotal - r0.rttTotal)) / (r1.rttCount - r0.rttCount) : NaN,
      stunRttMax: withRtt.length ? 1000 * Math.max(...withRtt.map((s) => s.rtt || 0)) : NaN,
      videoJitterBuffer: vFrames > 0 ? (1000 * (v1.vDelay - v0.vDelay)) / vFrames : NaN,
      videoMinimum: vFrames > 0 && v1.vMin !== undefined ? (1000 * (v1.vMin - v0.vMin)) / vFrames : NaN,
      videoNacks: v0 && v1 && v1.vNack !== undefined ? v1.vNack - v0.vNack : NaN,
      concealed: first && lastS && lastS.samples > first.samples
        ? (100 * (lastS.concealed - first.concealed)) / (lastS.samples - first.samples) : NaN,
    };
  }
  return out;
}

/** One line per phase. @param {Record<string, any>} sum */
export function formatSummary(sum) {
  const f = (/** @type {number} */ x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  return Object.entries(sum).map(([n, s]) => `  ${n.padEnd(7)} (${s.seconds.toFixed(1)} s): audio playout delay above before p50 ${f(s.playoutP50)} p95 ${f(s.playoutP95)} `
    + `max ${f(s.playoutMax)} ms; jitter buffer ${f(s.jitterBuffer)} ms (max of 1 s ${f(s.jitterBufferMax)}); `
    + `STUN round trip ${f(s.stunRtt)} ms (max ${f(s.stunRttMax)}); concealed ${Number.isFinite(s.concealed) ? s.concealed.toFixed(2) : '-'} %; `
    + `video jitter buffer ${f(s.videoJitterBuffer)} ms (minimum ${f(s.videoMinimum)}), ${f(s.videoNacks)} NACKs`).join('\n');
}
