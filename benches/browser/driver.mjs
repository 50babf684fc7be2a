// The browser-quality benchmark's driver for one scenario: starts every configuration at once
// (each with its own kham-relay on its own 127.0.0.x address, same link spec and seed), one
// publisher Chromium (fake 720p camera from a y4m file, fake microphone) and one subscriber
// Chromium, each with a page per configuration, then samples every subscriber page's getStats
// once a second for the run's duration.
//
//   node benches/browser/driver.mjs SPEC.json
//
// SPEC: {scenario, configs: [name], durationS, seed, y4m, relayBin, workDir,
//        linkArgs: {publisher: [...], subscriber: [...]}, relayIps: {name: ip}}
// Prints JSON lines on stdout: {type: "sample"|"config"|"error"|"load", ...}; logs on stderr.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CHROMIUM, CHROMIUM_ARGS } from '../../tests/browser/browser.mjs';
import { candidatePaths, initScript, publisherStats, subscriberStats } from './stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../tests/browser/package.json'));
const { chromium } = require('playwright-core');

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
const emit = (/** @type {any} */ obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const log = (/** @type {string} */ msg) => process.stderr.write(`[driver] ${msg}\n`);

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
fs.mkdirSync(spec.workDir, { recursive: true });

/** Busy and total jiffies of the whole machine (/proc/stat). */
function cpuTimes() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] || 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Each configuration's module (kham_no_adaptation is kham.mjs, which reads ctx.name). */
/** @type {Record<string, any>} */
const modules = {};
for (const name of spec.configs) {
  const file = path.join(here, 'configs', `${name === 'kham_no_adaptation' ? 'kham' : name}.mjs`);
  if (!fs.existsSync(file)) {
    emit({ type: 'error', config: name, message: `no configuration module ${path.relative(process.cwd(), file)}: skipped` });
    continue;
  }
  modules[name] = await import(pathToFileURL(file).href);
}
// Network setup (Janus's namespace and veth) before the browsers start, one at a time: a
// network change while a page loads fails its requests with net::ERR_NETWORK_CHANGED.
for (const [name, mod] of Object.entries(modules)) {
  if (typeof mod.prepare !== 'function') continue;
  try {
    await mod.prepare({ name, relayIp: spec.relayIps[name], workDir: spec.workDir, log: (/** @type {string} */ m) => log(`${name}: ${m}`) });
  } catch (err) {
    emit({ type: 'error', config: name, message: `prepare failed: ${/** @type {Error} */ (err).stack || err}` });
    delete modules[name];
  }
}

const extraArgs = ['--disable-features=WebRtcHideLocalIpsWithMdns'];
const [pubBrowser, subBrowser] = await Promise.all([
  chromium.launch({ executablePath: CHROMIUM, headless: false, args: [...CHROMIUM_ARGS, ...extraArgs, `--use-file-for-fake-video-capture=${spec.y4m}`] }),
  chromium.launch({ executablePath: CHROMIUM, headless: false, args: [...CHROMIUM_ARGS, ...extraArgs] }),
]);

/**
 * @param {import('playwright-core').Browser} browser @param {boolean} subscriber @param {string} label
 * @param {[string, string]|null} rewrite  candidate address rewrite in remote descriptions
 */
async function page(browser, subscriber, label, rewrite = null) {
  const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
  await context.addInitScript(initScript, { subscriber, rewrite });
  const p = await context.newPage();
  p.on('pageerror', (e) => log(`${label} pageerror: ${e.message}`));
  p.on('console', (m) => { if (m.type() === 'error' || process.env.KHAM_BENCH_VERBOSE) log(`${label} ${m.type()}: ${m.text()}`); });
  return p;
}

/** @type {{name: string, t0: number, handle: any, publisher: any, subscriber: any}[]} */
const running = [];
await Promise.all(Object.entries(modules).map(async ([name, mod]) => {
  try {
    const rewrite = typeof mod.subscriberRewrite === 'function' ? mod.subscriberRewrite(spec.relayIps[name]) : null;
    const [publisher, subscriber] = await Promise.all([page(pubBrowser, false, `${name} publisher`), page(subBrowser, true, `${name} subscriber`, rewrite)]);
    const startedAt = Date.now();
    const handle = await mod.start({
      name, publisher, subscriber, relayBin: spec.relayBin, relayIp: spec.relayIps[name],
      linkArgs: spec.linkArgs, seed: spec.seed, durationS: spec.durationS, workDir: spec.workDir,
      log: (/** @type {string} */ m) => log(`${name}: ${m}`),
    });
    const t0 = typeof handle.t0 === 'number' ? handle.t0 : startedAt;
    running.push({ name, t0, handle, publisher, subscriber });
    emit({ type: 'config', config: name, start_s: (t0 - startedAt) / 1000 });
    log(`${name}: started (${((Date.now() - startedAt) / 1000).toFixed(1)} s)`);
  } catch (err) {
    emit({ type: 'error', config: name, message: `start failed: ${/** @type {Error} */ (err).stack || err}` });
  }
}));

// Sample each configuration once a second from its own t0 until durationS after it.
let cpu = cpuTimes();
const ends = running.map((r) => r.t0 + spec.durationS * 1000);
const lastEnd = Math.max(0, ...ends);
let tick = Math.min(...running.map((r) => r.t0)) + 1000;
while (running.length && tick <= lastEnd + 500) {
  await sleep(Math.max(0, tick - Date.now()));
  const now = Date.now();
  tick += 1000;
  const c = cpuTimes();
  emit({ type: 'load', at_ms: now, loadavg1: os.loadavg()[0], cpu_busy_pct: c.total > cpu.total ? (100 * (c.busy - cpu.busy)) / (c.total - cpu.total) : null });
  cpu = c;
  await Promise.all(running.map(async (r, i) => {
    if (now < r.t0 || now > ends[i] + 500) return;
    try {
      const [sub, pub, server] = await Promise.all([
        r.subscriber.evaluate(subscriberStats),
        r.publisher.evaluate(publisherStats),
        r.handle.serverSample ? r.handle.serverSample().catch(() => ({})) : Promise.resolve({}),
      ]);
      const firstFrame = sub.first_frame_at === null ? null : (sub.first_frame_at - r.t0) / 1000;
      /** @type {Record<string, number>} */
      const stages = {};
      for (const [k, at] of Object.entries(sub.stages || {})) stages[k] = (/** @type {number} */ (at) - r.t0) / 1000;
      emit({ type: 'sample', config: r.name, t: (now - r.t0) / 1000, first_frame_s: firstFrame, stages_s: stages, sub, pub, server });
    } catch (err) {
      emit({ type: 'error', config: r.name, message: `sample failed: ${/** @type {Error} */ (err).message}` });
    }
  }));
}

// Which paths the pages' media took, then (after stop: the relays write their reports on exit)
// the relays that should have carried it: the link check (benches/src/browser/links.rs).
const paths = await Promise.all(running.map(async (r) => {
  const [publisher, subscriber] = await Promise.all([r.publisher, r.subscriber].map((p) => p.evaluate(candidatePaths).catch(() => null)));
  return { publisher, subscriber };
}));
await Promise.all(running.map((r) => r.handle.stop().catch((/** @type {Error} */ e) => log(`${r.name}: stop: ${e.message}`))));
running.forEach((r, i) => emit({ type: 'links', config: r.name, relays: r.handle.relays || [], pages: paths[i] }));
await Promise.all([pubBrowser.close(), subBrowser.close()]);
log('done');
process.exit(0);
