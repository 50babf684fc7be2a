// Sends a vitals source's numerics and waveforms through the SDK's data channels, framed by
// /sdk/vitals-frame.js. Waits until the channels are open (after admission and media setup).
import { encodeNumerics, encodeWave } from '/sdk/vitals-frame.js';

/** @typedef {import('./vitals-sim.js').VitalsSource} VitalsSource */

/**
 * Starts `source` once `client`'s vitals channels are open; returns a function that stops it.
 * @param {import('/sdk/kham.js').KhamClient} client
 * @param {VitalsSource} source
 * @param {(err: unknown) => void} [onError]  the device could not be started
 */
export function publishVitals(client, source, onError) {
  /** Index of the next sample, per signal (a gap at the receiver is a loss). @type {Record<string, number>} */
  const seq = {};
  let stopped = false;
  /** The last blood pressure measured and when (sender's clock, ms). */
  /** @type {{values: Record<string, number>, at: number}|null} */
  let lastBp = null;
  const sink = {
    /** @param {number} t @param {Record<string, number>} values */
    numerics(t, values) {
      // A cuff measures now and then (the simulator every minute): its last reading goes in
      // every frame with its age (code bp_age), so a viewer who joins, or whose channel opens,
      // after a measurement sees it with its age instead of a blank until the next one.
      if (values.bp_sys !== undefined) {
        lastBp = { values: { bp_sys: values.bp_sys, bp_dia: values.bp_dia, bp_mean: values.bp_mean }, at: t };
      } else if (lastBp) {
        values = { ...values, ...lastBp.values, bp_age: Math.max(0, (t - lastBp.at) / 1000) };
      }
      client.sendVitals(encodeNumerics(t, values));
    },
    /** @param {'ecg'|'pleth'} signal @param {number} rate @param {number} t0 @param {Float32Array} samples */
    wave(signal, rate, t0, samples) {
      const first = seq[signal] || 0;
      seq[signal] = first + samples.length;
      // A second of ECG at most per frame (the frame limit is 1024 bytes).
      client.sendVitals(encodeWave(signal, rate, first, t0, samples.subarray(0, 480)));
    },
  };
  const begin = () => {
    if (stopped) return;
    if (!client.vitalsReady()) {
      setTimeout(begin, 200);
      return;
    }
    source.start(sink).catch((err) => onError && onError(err));
  };
  begin();
  return () => {
    stopped = true;
    source.stop();
  };
}
