// The built-in simulated patient monitor: a realistic ECG (lead II, 250 Hz), a plethysmogram
// (100 Hz) that follows each beat, and numerics once a second (heart rate from the beats, SpO2,
// respiration, temperature; a blood pressure "cuff measurement" at the start and every minute).
// Behind the same interface as the Web Bluetooth sources (vitals-ble.js), for demonstrations and
// tests. Each sample is timestamped on this page's clock at the instant it was produced.

/**
 * @typedef {object} VitalsSink
 * @property {(t: number, values: Record<string, number>) => void} numerics
 * @property {(signal: 'ecg'|'pleth', rate: number, t0: number, samples: Float32Array) => void} wave
 *
 * @typedef {object} VitalsSource  a device: simulated, or a Bluetooth one
 * @property {string} kind
 * @property {(sink: VitalsSink) => Promise<void>} start
 * @property {() => void} stop
 */

const ECG_RATE = 250;
const PLETH_RATE = 100;
/** The monitor ticks this often; samples go out in frames of twice this (80 ms), the ECG and the
 * pleth in the same tick: 25 frames a second instead of 37.5 with 40 ms ECG frames, the doctor's
 * downlink 24 kbit/s for the monitor instead of 39 (`benches/browser/vitals-cost.mjs`; a frame's
 * UDP, DTLS and SCTP headers cost more than its samples). 100 ms frames left the 60 kbit/s
 * viewer of `vitals.test.mjs` able to carry the waveforms at times. */
const FRAME_MS = 40;
const BP_EVERY_MS = 60_000;

/** Page clock, Unix ms with a fraction. */
export const clock = () => performance.timeOrigin + performance.now();

/** Gaussian bump. @param {number} x @param {number} mu @param {number} sigma */
const g = (x, mu, sigma) => Math.exp(-0.5 * ((x - mu) / sigma) ** 2);

/** ECG (mV) at `s` seconds from the nearest R peak. @param {number} s */
function ecgAt(s) {
  return 0.12 * g(s, -0.2, 0.025) - 0.1 * g(s, -0.03, 0.01) + 1.1 * g(s, 0, 0.012)
    - 0.25 * g(s, 0.03, 0.012) + 0.3 * g(s, 0.28, 0.05);
}

/** Plethysmogram (0..1) at `s` seconds after an R peak (pulse arrives ~0.2 s later). @param {number} s */
function plethAt(s) {
  return 0.1 + 0.75 * g(s, 0.32, 0.08) + 0.25 * g(s, 0.58, 0.1);
}

/** A simulated device. `seed` makes the variability repeatable. @returns {VitalsSource} */
export function simulatedDevice(seed = 1) {
  let rng = seed >>> 0 || 1;
  const rand = () => {
    rng ^= rng << 13; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0;
    return rng / 4294967296;
  };
  /** @type {ReturnType<typeof setInterval>|null} */
  let timer = null;
  return {
    kind: 'sim',
    async start(sink) {
      const start = clock();
      /** R peaks so far, seconds since start. */
      const beats = [0.3];
      const hrBase = 72;
      const nextBeat = () => {
        const last = beats[beats.length - 1];
        // Sinus rhythm with a little respiratory variability.
        const rr = (60 / hrBase) * (1 + 0.04 * Math.sin(last * 2 * Math.PI * 0.27) + 0.02 * (rand() - 0.5));
        beats.push(last + rr);
      };
      /** @param {number} s */
      const nearestBeat = (s) => {
        while (beats[beats.length - 1] < s + 1) nextBeat();
        while (beats.length > 8 && beats[2] < s - 2) beats.shift();
        let best = beats[0];
        for (const b of beats) if (Math.abs(s - b) < Math.abs(s - best)) best = b;
        return best;
      };
      /** @param {number} s */
      const lastBeat = (s) => {
        nearestBeat(s);
        let prev = beats[0];
        for (const b of beats) if (b <= s) prev = b;
        return prev;
      };
      let ecgDone = 0;
      let plethDone = 0;
      let lastNumerics = -Infinity;
      let lastBp = -Infinity;
      const tick = () => {
        const now = clock();
        const elapsed = (now - start) / 1000;
        const ecgDue = Math.floor(elapsed * ECG_RATE);
        // Both signals in frames twice the tick (see FRAME_MS).
        if (ecgDue - ecgDone >= (ECG_RATE * 2 * FRAME_MS) / 1000) {
          const out = new Float32Array(ecgDue - ecgDone);
          for (let i = 0; i < out.length; i++) {
            const s = (ecgDone + i) / ECG_RATE;
            out[i] = ecgAt(s - nearestBeat(s)) + 0.05 * Math.sin(2 * Math.PI * 0.25 * s) + 0.01 * (rand() - 0.5);
          }
          sink.wave('ecg', ECG_RATE, start + (ecgDone * 1000) / ECG_RATE, out);
          ecgDone = ecgDue;
        }
        const plethDue = Math.floor(elapsed * PLETH_RATE);
        if (plethDue - plethDone >= (PLETH_RATE * 2 * FRAME_MS) / 1000) {
          const out = new Float32Array(plethDue - plethDone);
          for (let i = 0; i < out.length; i++) {
            const s = (plethDone + i) / PLETH_RATE;
            out[i] = plethAt(s - lastBeat(s));
          }
          sink.wave('pleth', PLETH_RATE, start + (plethDone * 1000) / PLETH_RATE, out);
          plethDone = plethDue;
        }
        if (now - lastNumerics >= 1000) {
          lastNumerics = now;
          const recent = beats.filter((b) => b <= elapsed).slice(-6);
          const hr = recent.length >= 2 ? (60 * (recent.length - 1)) / (recent[recent.length - 1] - recent[0]) : hrBase;
          /** @type {Record<string, number>} */
          const values = {
            hr: Math.round(hr),
            spo2: Math.round(97 + Math.sin(elapsed / 20)),
            rr: Math.round(16 + Math.sin(elapsed / 30)),
            temp: Math.round((36.8 + 0.1 * Math.sin(elapsed / 60)) * 10) / 10,
          };
          if (now - lastBp >= BP_EVERY_MS) {
            lastBp = now;
            Object.assign(values, { bp_sys: 128, bp_dia: 82, bp_mean: 97 });
          }
          sink.numerics(now, values);
        }
      };
      tick();
      timer = setInterval(tick, FRAME_MS);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
