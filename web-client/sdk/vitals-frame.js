// The vital-signs framing, version 1 (crates/proto/PROTOCOL.md, "Vital signs"): binary frames on
// two data channels, little-endian. The server reads only the first two bytes (version, kind) and
// puts the publisher's id in front of what it forwards.
//
//   numerics  [1][1][t: f64 ms][n: u8] n x [code: u8][value: f32]
//   waveform  [1][2][signal: u8][rate: u16 Hz][seq: u32][t0: f64 ms][n: u16] n x [sample: i16]
//   forwarded [1][kind | 0x80][len: u8][source id: len bytes][the rest of the frame after kind]
//
// `t` and `t0` are the sender's clock (Unix milliseconds with a fraction: performance.timeOrigin +
// performance.now()); `t0` is the time of the first sample, `seq` its index since the source
// started (a gap is a loss).

export const VITALS_VERSION = 1;
export const KIND_NUMERICS = 1;
export const KIND_WAVE = 2;
export const FORWARDED = 0x80;
/** Largest frame the server forwards. */
export const MAX_FRAME = 1024;

/** Numeric codes and their units. */
export const NUMERIC_CODES = Object.freeze({
  hr: 1, // heart rate, beats/min
  spo2: 2, // oxygen saturation, %
  rr: 3, // respiration rate, breaths/min
  bp_sys: 4, // blood pressure, mmHg
  bp_dia: 5,
  bp_mean: 6,
  temp: 7, // body temperature, °C
  // Seconds since the blood pressure in the same frame was measured: a cuff measures now and
  // then, and its last reading is repeated in every frame with its age, so a viewer whose
  // channel opened after the measurement sees it at once (not at the next one).
  bp_age: 8,
});
const CODE_NAMES = Object.fromEntries(Object.entries(NUMERIC_CODES).map(([k, v]) => [v, k]));

/** Waveform signals and their sample units. */
export const SIGNALS = Object.freeze({
  ecg: 1, // ECG lead II, microvolts
  pleth: 2, // plethysmogram, 1/10000 of full scale
});
const SIGNAL_NAMES = Object.fromEntries(Object.entries(SIGNALS).map(([k, v]) => [v, k]));
/** Sample value -> physical unit (ECG in mV, pleth 0..1). */
export const SIGNAL_SCALE = Object.freeze({ ecg: 1 / 1000, pleth: 1 / 10000 });

/** A framing error (a frame that is too short, of another version or kind). */
export class VitalsFrameError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'VitalsFrameError';
  }
}

/**
 * A numerics frame.
 * @param {number} t  sender's clock, ms
 * @param {Partial<Record<keyof typeof NUMERIC_CODES, number>>} values
 */
export function encodeNumerics(t, values) {
  const entries = Object.entries(values).filter(([k, v]) => k in NUMERIC_CODES && Number.isFinite(v));
  const buf = new ArrayBuffer(11 + entries.length * 5);
  const v = new DataView(buf);
  v.setUint8(0, VITALS_VERSION);
  v.setUint8(1, KIND_NUMERICS);
  v.setFloat64(2, t, true);
  v.setUint8(10, entries.length);
  entries.forEach(([k, val], i) => {
    v.setUint8(11 + i * 5, NUMERIC_CODES[/** @type {keyof typeof NUMERIC_CODES} */ (k)]);
    v.setFloat32(12 + i * 5, /** @type {number} */ (val), true);
  });
  return new Uint8Array(buf);
}

/**
 * A waveform frame.
 * @param {keyof typeof SIGNALS} signal
 * @param {number} rate  samples per second
 * @param {number} seq   index of the first sample
 * @param {number} t0    sender's clock at the first sample, ms
 * @param {ArrayLike<number>} samples  in the signal's physical unit (mV, 0..1)
 */
export function encodeWave(signal, rate, seq, t0, samples) {
  const n = samples.length;
  const buf = new ArrayBuffer(19 + n * 2);
  const v = new DataView(buf);
  v.setUint8(0, VITALS_VERSION);
  v.setUint8(1, KIND_WAVE);
  v.setUint8(2, SIGNALS[signal]);
  v.setUint16(3, rate, true);
  v.setUint32(5, seq >>> 0, true);
  v.setFloat64(9, t0, true);
  v.setUint16(17, n, true);
  const scale = SIGNAL_SCALE[signal];
  for (let i = 0; i < n; i++) {
    const s = Math.round(samples[i] / scale);
    v.setInt16(19 + i * 2, Math.max(-32768, Math.min(32767, s)), true);
  }
  return new Uint8Array(buf);
}

/**
 * @typedef {{kind: 'numerics', t: number, values: Record<string, number>}} NumericsFrame
 * @typedef {{kind: 'wave', signal: string, rate: number, seq: number, t0: number, samples: Float32Array}} WaveFrame
 * @typedef {{source: string, frame: NumericsFrame|WaveFrame}} Forwarded
 */

/**
 * Decodes a frame as the server forwards it.
 * @param {ArrayBuffer|Uint8Array} data
 * @returns {Forwarded}
 * @throws {VitalsFrameError}
 */
export function decodeForwarded(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < 3) throw new VitalsFrameError('frame too short');
  if (bytes[0] !== VITALS_VERSION) throw new VitalsFrameError(`unknown vitals version ${bytes[0]}`);
  if (!(bytes[1] & FORWARDED)) throw new VitalsFrameError('not a forwarded frame');
  const len = bytes[2];
  if (bytes.length < 3 + len) throw new VitalsFrameError('frame too short');
  const source = new TextDecoder().decode(bytes.subarray(3, 3 + len));
  // Rebuild the client frame: version, kind, then the rest.
  const rest = bytes.subarray(3 + len);
  const frame = new Uint8Array(2 + rest.length);
  frame[0] = bytes[0];
  frame[1] = bytes[1] & ~FORWARDED;
  frame.set(rest, 2);
  return { source, frame: decodeFrame(frame) };
}

/**
 * Decodes a client frame.
 * @param {Uint8Array} bytes
 * @returns {NumericsFrame|WaveFrame}
 * @throws {VitalsFrameError}
 */
export function decodeFrame(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 2) throw new VitalsFrameError('frame too short');
  if (bytes[0] !== VITALS_VERSION) throw new VitalsFrameError(`unknown vitals version ${bytes[0]}`);
  if (bytes[1] === KIND_NUMERICS) {
    if (bytes.length < 11) throw new VitalsFrameError('numerics frame too short');
    const n = v.getUint8(10);
    if (bytes.length < 11 + n * 5) throw new VitalsFrameError('numerics frame too short');
    /** @type {Record<string, number>} */
    const values = {};
    for (let i = 0; i < n; i++) {
      const name = CODE_NAMES[v.getUint8(11 + i * 5)];
      if (name) values[name] = v.getFloat32(12 + i * 5, true);
    }
    return { kind: 'numerics', t: v.getFloat64(2, true), values };
  }
  if (bytes[1] === KIND_WAVE) {
    if (bytes.length < 19) throw new VitalsFrameError('waveform frame too short');
    const n = v.getUint16(17, true);
    if (bytes.length < 19 + n * 2) throw new VitalsFrameError('waveform frame too short');
    const signal = SIGNAL_NAMES[v.getUint8(2)];
    if (!signal) throw new VitalsFrameError('unknown waveform signal');
    const scale = SIGNAL_SCALE[/** @type {keyof typeof SIGNAL_SCALE} */ (signal)];
    const samples = new Float32Array(n);
    for (let i = 0; i < n; i++) samples[i] = v.getInt16(19 + i * 2, true) * scale;
    return {
      kind: 'wave', signal, rate: v.getUint16(3, true), seq: v.getUint32(5, true),
      t0: v.getFloat64(9, true), samples,
    };
  }
  throw new VitalsFrameError(`unknown vitals frame kind ${bytes[1]}`);
}
