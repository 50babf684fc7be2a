// The doctor's view of each publisher's vital signs: numerics tiles (value, age, stale, missing
// and out-of-range marks) and scrolling ECG and pleth waveforms on canvases. Fed by the SDK's
// `vitals` events; nothing is kept once the session ends. Measured sample loss and end-to-end
// latency (sender's sample clock to this page's receive time; one clock when both pages run on
// one machine) are kept in `window.__vitalsStats` for tests and demonstrations.
import { byId, h } from './dom.js';
import { t } from './i18n.js';

/** @typedef {import('/sdk/vitals-frame.js').NumericsFrame} NumericsFrame */
/** @typedef {import('/sdk/vitals-frame.js').WaveFrame} WaveFrame */

/** Numerics older than this are marked stale (blood pressure: a cuff measures now and then). */
const STALE_MS = 5_000;
const BP_STALE_MS = 30 * 60_000;
/** No waveform for this long while numerics come: shown as missing (a weak link). */
const WAVE_MISSING_MS = 3_000;
/** Seconds of waveform on screen. */
const WINDOW_S = 5;
/** Adult ranges; outside them a tile is marked. */
const RANGES = /** @type {Record<string, [number, number]>} */ ({
  hr: [50, 120], spo2: [92, 100], rr: [8, 25], temp: [35.5, 38.0], bp_sys: [90, 140], bp_dia: [60, 90],
});
const TILES = /** @type {const} */ (['hr', 'spo2', 'rr', 'bp', 'temp']);
const UNITS = { hr: 'vitals.unit.per_min', spo2: '%', rr: 'vitals.unit.per_min', bp: 'mmHg', temp: '°C' };

/**
 * @typedef {object} WaveState
 * @property {Float32Array} ring
 * @property {number} total     samples received
 * @property {number} nextSeq   expected seq of the next frame
 * @property {number} lost      samples missing (seq gaps)
 * @property {number} lastAt    receive time of the last frame (page clock)
 * @property {number} rate
 *
 * @typedef {object} Panel
 * @property {HTMLElement} el
 * @property {Record<string, {v: number, at: number}>} values
 * @property {Record<string, WaveState>} waves
 * @property {number} lastAt
 * @property {number[]} latencies  ms, the most recent waveform frames
 */

/** @type {Map<string, Panel>} */
const panels = new Map();
/** @type {(id: string) => string} */
let nameOf = (id) => id;
/** @type {ReturnType<typeof setInterval>|null} */
let ticker = null;

/** @type {Record<string, {ecg?: object, pleth?: object, numerics: number}>} */
const stats = {};
/** @type {any} */ (window).__vitalsStats = stats;

/** How panels are titled. @param {(id: string) => string} fn */
export function setVitalsNames(fn) {
  nameOf = fn;
}

/**
 * One decoded frame from `participantId`, received at `receivedAt` (page clock).
 * @param {string} participantId
 * @param {NumericsFrame|WaveFrame} frame
 * @param {number} receivedAt
 */
export function onVitalsFrame(participantId, frame, receivedAt) {
  const p = panelOf(participantId);
  const now = Date.now();
  p.lastAt = now;
  const st = (stats[participantId] ||= { numerics: 0 });
  if (frame.kind === 'numerics') {
    st.numerics += 1;
    // A repeated blood pressure comes with its age (seconds since the cuff measured).
    const bpAge = frame.values.bp_age;
    for (const [k, v] of Object.entries(frame.values)) {
      if (k === 'bp_age') continue;
      const at = k.startsWith('bp_') && bpAge !== undefined ? now - 1000 * bpAge : now;
      p.values[k] = { v, at };
    }
    return;
  }
  const w = (p.waves[frame.signal] ||= {
    ring: new Float32Array(frame.rate * WINDOW_S), total: 0, nextSeq: frame.seq, lost: 0, lastAt: now, rate: frame.rate,
  });
  if (frame.seq > w.nextSeq) w.lost += frame.seq - w.nextSeq;
  if (frame.seq + frame.samples.length > w.nextSeq) w.nextSeq = frame.seq + frame.samples.length;
  // Late (reordered) samples are counted but not drawn back in time.
  const n = Math.min(frame.samples.length, w.ring.length);
  w.ring.copyWithin(0, n);
  w.ring.set(frame.samples.subarray(frame.samples.length - n), w.ring.length - n);
  w.total += frame.samples.length;
  w.lastAt = now;
  const lastSample = frame.t0 + ((frame.samples.length - 1) * 1000) / frame.rate;
  p.latencies.push(receivedAt - lastSample);
  if (p.latencies.length > 3000) p.latencies.splice(0, 1000);
  st[/** @type {'ecg'|'pleth'} */ (frame.signal)] = { frames: p.latencies.length, samples: w.total, lost: w.lost, latencies: p.latencies };
}

/** A publisher left: its panel goes. @param {string} id */
export function removeVitals(id) {
  const p = panels.get(id);
  if (p) p.el.remove();
  panels.delete(id);
  delete stats[id];
  byId('vitals-area').hidden = panels.size === 0;
}

/** The session is over: nothing is kept. */
export function clearVitals() {
  for (const id of [...panels.keys()]) removeVitals(id);
}

/** Redraws the labels in the current language. */
export function relabelVitals() {
  for (const [id, p] of panels) {
    const fresh = build(id);
    p.el.replaceWith(fresh);
    p.el = fresh;
  }
  draw();
}

/** @param {string} id */
function panelOf(id) {
  let p = panels.get(id);
  if (!p) {
    p = { el: build(id), values: {}, waves: {}, lastAt: Date.now(), latencies: [] };
    panels.set(id, p);
    const area = byId('vitals-area');
    area.append(p.el);
    area.hidden = false;
    if (!ticker) ticker = setInterval(draw, 100);
  }
  return p;
}

/** @param {string} id */
function build(id) {
  const tiles = TILES.map((k) => h('div', { class: 'vt', 'data-vital': k }, [
    h('span', { class: 'vt-label' }, [t(`vitals.${k}`)]),
    h('span', { class: 'vt-value', 'data-testid': `vitals-${k}`, 'data-missing': 'true' }, ['—']),
    h('span', { class: 'vt-unit' }, [UNITS[k].startsWith('vitals.') ? t(UNITS[k]) : UNITS[k]]),
    h('span', { class: 'vt-flag', 'data-testid': `vitals-${k}-flag` }),
  ]));
  const canvas = (/** @type {string} */ name, /** @type {number} */ height) => h('canvas', {
    class: `vw vw-${name}`, 'data-testid': `vitals-${name}`, 'data-samples': '0', width: '600', height: String(height),
    'aria-label': t(`vitals.${name}`), role: 'img',
  });
  return h('article', { class: 'vitals', 'data-testid': 'vitals', 'data-participant-id': id }, [
    h('header', { class: 'vitals-head' }, [
      h('span', { class: 'vitals-name' }, [t('vitals.title', { name: nameOf(id) })]),
      h('span', { class: 'vitals-age', 'data-testid': 'vitals-age' }),
    ]),
    h('div', { class: 'vitals-tiles' }, tiles),
    h('div', { class: 'vitals-waves' }, [
      h('span', { class: 'vw-label' }, [t('vitals.ecg')]), canvas('ecg', 70),
      h('span', { class: 'vw-label' }, [t('vitals.pleth')]), canvas('pleth', 40),
      h('p', { class: 'wave-missing', 'data-testid': 'vitals-wave-missing', hidden: true }, [t('vitals.wave_missing')]),
    ]),
  ]);
}

function draw() {
  const now = Date.now();
  for (const p of panels.values()) {
    for (const k of TILES) drawTile(p, k, now);
    const age = Math.round((now - p.lastAt) / 1000);
    p.el.querySelector('[data-testid="vitals-age"]').textContent = t('vitals.updated', { s: age });
    let waveFresh = false;
    for (const name of ['ecg', 'pleth']) {
      const c = /** @type {HTMLCanvasElement} */ (p.el.querySelector(`[data-testid="vitals-${name}"]`));
      const w = p.waves[name];
      if (!w) continue;
      waveFresh ||= now - w.lastAt < WAVE_MISSING_MS;
      c.dataset.samples = String(w.total);
      c.classList.toggle('stale', now - w.lastAt >= WAVE_MISSING_MS);
      drawWave(c, w, name === 'ecg' ? [-0.5, 1.4] : [0, 1]);
    }
    const numericsFresh = Object.values(p.values).some((x) => now - x.at < STALE_MS);
    /** @type {HTMLElement} */ (p.el.querySelector('[data-testid="vitals-wave-missing"]')).hidden = waveFresh || !numericsFresh;
  }
}

/** @param {Panel} p @param {typeof TILES[number]} k @param {number} now */
function drawTile(p, k, now) {
  const el = /** @type {HTMLElement} */ (p.el.querySelector(`[data-testid="vitals-${k}"]`));
  const flag = /** @type {HTMLElement} */ (p.el.querySelector(`[data-testid="vitals-${k}-flag"]`));
  const tile = /** @type {HTMLElement} */ (el.parentElement);
  const x = k === 'bp' ? p.values.bp_sys : p.values[k];
  if (!x) {
    el.textContent = '—';
    el.dataset.missing = 'true';
    flag.textContent = t('vitals.missing');
    return;
  }
  delete el.dataset.missing;
  const age = now - x.at;
  el.dataset.ageMs = String(Math.round(age));
  let text;
  let range = '';
  if (k === 'bp') {
    const dia = p.values.bp_dia;
    text = `${Math.round(x.v)}/${dia ? Math.round(dia.v) : '—'}`;
    range = outOf('bp_sys', x.v) || (dia ? outOf('bp_dia', dia.v) : '');
  } else {
    text = k === 'temp' ? x.v.toFixed(1) : String(Math.round(x.v));
    range = outOf(k, x.v);
  }
  el.textContent = text;
  const stale = age >= (k === 'bp' ? BP_STALE_MS : STALE_MS);
  tile.classList.toggle('stale', stale);
  tile.classList.toggle('alarm', !!range);
  if (range) tile.dataset.range = range;
  else delete tile.dataset.range;
  const marks = [];
  if (range) marks.push(t(`vitals.${range}`));
  if (stale) marks.push(t('vitals.stale'));
  flag.textContent = marks.join(' · ');
}

/** 'low', 'high' or '' for a value against its range. @param {string} k @param {number} v */
function outOf(k, v) {
  const r = RANGES[k];
  if (!r) return '';
  return v < r[0] ? 'low' : v > r[1] ? 'high' : '';
}

/** @param {HTMLCanvasElement} c @param {WaveState} w @param {[number, number]} range */
function drawWave(c, w, [lo, hi]) {
  const ctx = c.getContext('2d');
  if (!ctx) return;
  const { width, height } = c;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = getComputedStyle(c).color || '#0a0';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const n = w.ring.length;
  const shown = Math.min(n, w.total);
  for (let i = n - shown; i < n; i++) {
    const x = (i / (n - 1)) * width;
    const y = height - ((w.ring[i] - lo) / (hi - lo)) * height;
    if (i === n - shown) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.stroke();
}
