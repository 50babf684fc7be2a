// The clean-link ramp measurement (browser-quality --clean): on loopback, no emulated link, how
// fast each receiving side's video climbs to 540p and 720p, under kham and under a direct
// browser call, one phase after the other in one run (at the same time they would share the
// two cores):
//   kham           doctor + station, each its own Chromium with the 720p fake camera, the web
//                  client publishing three simulcast layers and receiving the other
//   direct         two Chromiums with the same camera in a direct call (one 720p encoding each
//                  way, libwebrtc's own adaptation), signalled by this script
//   kham_observer  the kham call plus a receive-only observer (a third Chromium)
// Every 500 ms each page's received videos and, in kham pages, every tile's quality badge; every
// second the kham server's view of each participant (admin API: estimate, layers, pause).
//
//   node benches/browser/clean.mjs SPEC.json
//
// SPEC: {phases: [name], durationS, y4m, workDir}
// Prints JSON lines on stdout: {type: "phase"|"sample"|"server"|"ramp"|"error"|"load", ...}; logs
// on stderr.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, CHROMIUM_ARGS } from '../../tests/browser/browser.mjs';
import { startKham } from '../../tests/browser/server.mjs';
import { serveBlank } from './blank.mjs';
import { RAMP_HEIGHTS, directPrepare, directSignal, rampRecorder, rampSample } from './ramp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../tests/browser/package.json'));
const { chromium } = require('playwright-core');

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
const emit = (/** @type {any} */ obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const log = (/** @type {string} */ msg) => process.stderr.write(`[clean] ${msg}\n`);

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
fs.mkdirSync(spec.workDir, { recursive: true });
/** A laptop-sized window: one remote tile is large enough for the 720p layer. */
const VIEWPORT = { width: 1280, height: 800 };
const SAMPLE_MS = 500;

/** One Chromium process (a device); `camera`: the y4m fake camera. @param {boolean} camera */
function launch(camera) {
  const args = [...CHROMIUM_ARGS, '--disable-features=WebRtcHideLocalIpsWithMdns'];
  if (camera) args.push(`--use-file-for-fake-video-capture=${spec.y4m}`);
  return chromium.launch({ executablePath: CHROMIUM, headless: false, args });
}

/** @param {import('playwright-core').Browser} browser @param {string} label */
async function page(browser, label) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  await context.addInitScript(rampRecorder, { heights: RAMP_HEIGHTS });
  const p = await context.newPage();
  p.on('pageerror', (e) => log(`${label} pageerror: ${e.message}`));
  p.on('console', (m) => { if (m.type() === 'error' || process.env.KHAM_BENCH_VERBOSE) log(`${label} ${m.type()}: ${m.text()}`); });
  return p;
}

/** Opens a kham join link and clicks join; resolves with the click's instant once the call shows. */
async function join(/** @type {import('playwright-core').Page} */ p, /** @type {string} */ link) {
  await p.goto(link);
  await p.waitForSelector('[data-testid="join"]:not([disabled])', { timeout: 30_000 });
  const clicked = Date.now();
  await p.click('[data-testid="join"]');
  await p.waitForSelector('[data-testid="call"]:not([hidden])', { timeout: 30_000 });
  return clicked;
}

/**
 * A kham call: the doctor joins, then (t0) the station and, with `observer`, a receive-only
 * observer at once. Resolves with the pages by role, t0 and a stop function.
 * @param {boolean} observer
 */
async function khamCall(observer) {
  const kham = await startKham();
  /** @type {import('playwright-core').Browser[]} */
  let browsers = [];
  const stop = async () => {
    await Promise.all(browsers.map((b) => b.close().catch(() => {})));
    await kham.stop();
  };
  try {
    // Inside the try: a browser that cannot start must not leave the server running.
    browsers = await Promise.all([launch(true), launch(true), ...(observer ? [launch(false)] : [])]);
    const room = `clean-${Date.now().toString(36)}`;
    const roles = /** @type {const} */ (['doctor', 'station', 'observer']).slice(0, browsers.length);
    const names = { doctor: 'BS. Clean', station: 'Trạm y tế Clean', observer: 'Quan sát Clean' };
    /** @type {Record<string, import('playwright-core').Page>} */
    const pages = {};
    for (const [i, role] of roles.entries()) pages[role] = await page(browsers[i], role);
    const links = Object.fromEntries(await Promise.all(roles.map(async (role) => [role, await kham.joinLink({ room, identity: `${role}-clean`, name: names[role], role })])));
    const admin = await kham.adminToken();
    await join(pages.doctor, links.doctor);
    const joins = roles.slice(1).map((role) => join(pages[role], links[role]));
    const clicks = await Promise.all(joins);
    /** The server's view of each participant (admin API): estimate, layers, pause, quality. */
    const server = async () => {
      const res = await fetch(`${kham.baseUrl}/api/admin/rooms/${encodeURIComponent(room)}`, { headers: { authorization: `Bearer ${admin}` } });
      if (!res.ok) return [];
      const view = await res.json();
      return (view.participants || []).map((/** @type {any} */ p) => ({
        name: p.name, role: p.role, quality: p.quality, estimate_kbps: p.estimate_kbps, audio_only: p.audio_only,
        layers: p.layers, kbps_out: p.kbps_out, rtt_ms: p.rtt_ms, loss_out_percent: p.loss_out_percent,
      }));
    };
    return { pages, t0: Math.min(...clicks), stop, server };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A direct call between two Chromiums, signalled here (t0: the first offer is asked for). */
async function directCall() {
  const blank = await serveBlank();
  /** @type {import('playwright-core').Browser[]} */
  let browsers = [];
  const stop = async () => {
    await Promise.all(browsers.map((b) => b.close().catch(() => {})));
    await blank.close();
  };
  try {
    browsers = await Promise.all([launch(true), launch(true)]);
    const [a, b] = await Promise.all([page(browsers[0], 'a'), page(browsers[1], 'b')]);
    await Promise.all([a.goto(blank.url), b.goto(blank.url)]);
    await Promise.all([a.evaluate(directPrepare), b.evaluate(directPrepare)]);
    const t0 = Date.now();
    const offer = await a.evaluate(directSignal, null);
    const answer = await b.evaluate(directSignal, offer);
    await a.evaluate(directSignal, answer);
    return { pages: { a, b }, t0, stop, server: null };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat). */
function cpuTimes() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] || 0);
  return { busy: f.reduce((x, y) => x + y, 0) - idle, total: f.reduce((x, y) => x + y, 0) };
}

for (const phase of spec.phases) {
  log(`phase ${phase}: starting`);
  let call;
  try {
    call = phase === 'direct' ? await directCall() : await khamCall(phase === 'kham_observer');
  } catch (err) {
    emit({ type: 'error', phase, message: `start failed: ${/** @type {Error} */ (err).stack || err}` });
    continue;
  }
  emit({ type: 'phase', phase, pages: Object.keys(call.pages) });
  let cpu = cpuTimes();
  let loadTick = 0;
  const end = call.t0 + spec.durationS * 1000;
  for (let tick = call.t0 + SAMPLE_MS; tick <= end; tick += SAMPLE_MS) {
    await sleep(Math.max(0, tick - Date.now()));
    const t = (Date.now() - call.t0) / 1000;
    if (++loadTick % 2 === 0) {
      const c = cpuTimes();
      emit({ type: 'load', phase, loadavg1: os.loadavg()[0], cpu_busy_pct: c.total > cpu.total ? (100 * (c.busy - cpu.busy)) / (c.total - cpu.total) : null });
      cpu = c;
      if (call.server) {
        const participants = await call.server().catch(() => []);
        emit({ type: 'server', phase, t, participants });
      }
    }
    await Promise.all(Object.entries(call.pages).map(async ([role, p]) => {
      try {
        const s = await p.evaluate(rampSample);
        emit({ type: 'sample', phase, page: role, t, videos: s.videos, sent: s.sent, badges: s.badges });
      } catch (err) {
        emit({ type: 'error', phase, page: role, message: `sample failed: ${/** @type {Error} */ (err).message}` });
      }
    }));
  }
  await Promise.all(Object.entries(call.pages).map(async ([role, p]) => {
    const s = await p.evaluate(rampSample).catch(() => null);
    if (!s) return;
    const rel = (/** @type {number|null|undefined} */ ms) => (ms === null || ms === undefined ? null : (ms - call.t0) / 1000);
    const videos = Object.entries(s.ramp).map(([mid, r]) => ({
      mid, from: r.from, first_frame_s: rel(r.first_frame),
      at_s: Object.fromEntries(Object.entries(r.at).map(([h, ms]) => [h, rel(/** @type {number} */ (ms))])),
    }));
    emit({ type: 'ramp', phase, page: role, videos });
  }));
  await call.stop();
  log(`phase ${phase}: done`);
}
log('done');
process.exit(0);
