// Still images (issue 16): a station sends a 1 MB picture through the SFU's image data channel;
// the doctor gets it intact (SHA-256 compared with the file's), both pages show a progress bar
// that moves, the doctor opens it in the zoom and pan viewer, audio keeps flowing meanwhile; the
// same over a 200 kbit/s / 150 ms link to the doctor within a minute, with the camera flowing;
// a file past the 8 MB limit is refused with a clear message; the server's log (kham's crates at
// debug level) holds none of the images' bytes.
//
//   KHAM_BIN=target/debug/kham node --test images.test.mjs

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium, newPage, screenshot, takeCspViolations } from './browser.mjs';
import { startKham } from './server.mjs';
import { joinShaped, bmp } from './shaped.mjs';
import { startAudioProbe, stopAudioProbe, summarise, formatSummary } from './audio-delay.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;
const ROOM = `images-${process.pid}-${Date.now().toString(36)}`;
const visible = (testid) => `[data-testid="${testid}"]:not([hidden])`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kham-images-'));
/** Milliseconds of the doctor's audio measured before and after the thin-link transfer. */
const PHASE_MS = 5000;

before(async () => {
  // kham's own crates at debug: image bytes must not appear at any level.
  kham = await startKham({ extraEnv: { KHAM_LOG__LEVEL: 'info,kham=debug,kham_signal=debug,kham_server=debug,kham_sfu=debug' } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await kham?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  assert.deepEqual(takeCspViolations(), [], 'Content-Security-Policy violations');
});


/** Every picture sent, for the log check at the end. @type {Buffer[]} */
const SENT = [];

/** Joins `room` (ROOM by default); on a link shaped by Chromium's network emulation when `link`
 * ({downKbps, upKbps, latencyMs}) is given. */
const join = (name, who, { room = ROOM, link = null } = {}) =>
  joinShaped(browser, kham, room, name, who, link);

/** Records the highest progress percent seen on `page` (polled every 50 ms) until stopped. */
function watchProgress(page, direction) {
  return page.evaluate((direction) => {
    const seen = [];
    const t = setInterval(() => {
      const bar = document.querySelector(`[data-testid="image-item"][data-direction="${direction}"] [data-testid="image-progress"]`);
      if (bar) seen.push(Number(bar.getAttribute('data-percent') || 0));
    }, 50);
    /** @type {any} */ (window).__progress = { seen, stop: () => clearInterval(t) };
  }, direction);
}
const progressSeen = (page) => page.evaluate(() => {
  const p = /** @type {any} */ (window).__progress;
  p.stop();
  return p.seen;
});

test('a 1 MB image arrives intact with progress on both sides; audio flows meanwhile', async () => {
  const doctor = await join('doctor', { identity: 'dr', name: 'BS. An', role: 'doctor' });
  const station = await join('station', { identity: 'tyt', name: 'Trạm y tế', role: 'station' });
  const stationId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await station.waitForFunction(() => /** @type {any} */ (window).__kham.vitalsReady(), null, { timeout: 20_000 });
  await doctor.waitForFunction(() => /** @type {any} */ (window).__kham.vitalsReady(), null, { timeout: 20_000 });

  const file = path.join(dir, 'wound.bmp');
  const bytes = bmp(592, 592);
  SENT.push(bytes);
  fs.writeFileSync(file, bytes);
  const hash = crypto.createHash('sha256').update(bytes).digest('hex');
  console.log(`image: ${bytes.length} bytes, sha256 ${hash.slice(0, 16)}…`);

  await watchProgress(station, 'out');
  await watchProgress(doctor, 'in');
  const audioBefore = await audioPackets(doctor, stationId);
  const t0 = Date.now();
  await station.setInputFiles('[data-testid="image-send"]', file);
  await doctor.waitForSelector('[data-testid="shared-image"][data-sha256]', { timeout: 40_000 });
  const took = Date.now() - t0;
  const audioAfter = await audioPackets(doctor, stationId);
  const got = await doctor.getAttribute('[data-testid="shared-image"]', 'data-sha256');
  const dims = await doctor.evaluate(() => {
    const c = document.querySelector('[data-testid="shared-image"]');
    return `${c?.getAttribute('data-width')}x${c?.getAttribute('data-height')} (${c?.getAttribute('data-bytes')} bytes)`;
  });
  console.log(`1 MB image on loopback: ${took} ms; doctor got ${dims}`);
  assert.equal(got, hash, 'the doctor has exactly the bytes sent');
  assert.match(dims, /^592x592/, 'decoded at full resolution');
  await station.waitForSelector('[data-testid="image-item"][data-direction="out"] [data-testid="shared-image"]', { timeout: 10_000 });
  const out = await progressSeen(station);
  const inn = await progressSeen(doctor);
  console.log(`progress seen: station ${[...new Set(out)].length} distinct values, doctor ${[...new Set(inn)].length}`);
  assert.ok(out.some((p) => p > 0 && p < 100), 'the sender\'s bar moved through intermediate values');
  assert.ok(inn.some((p) => p > 0 && p < 100), 'the receiver\'s bar moved through intermediate values');
  assert.equal(Math.max(...inn), 100);
  const played = (audioAfter.samples - audioBefore.samples) / 48_000;
  console.log(`doctor's audio from the station during the transfer: ${played.toFixed(1)} s played of ${(took / 1000).toFixed(1)} s, ${(100 * (audioAfter.concealed - audioBefore.concealed) / Math.max(1, audioAfter.samples - audioBefore.samples)).toFixed(2)} % concealed`);
  // Samples, not packets: the server may ask for 40 or 60 ms packets.
  assert.ok(played >= 0.8 * (took / 1000), 'audio kept playing during the transfer');

  // Zoom and pan at full resolution.
  await doctor.click('[data-testid="shared-image"]');
  await doctor.waitForSelector('[data-testid="image-viewer"][open]');
  const z0 = Number(await doctor.getAttribute('[data-testid="image-canvas"]', 'data-zoom'));
  await doctor.click('[data-testid="image-zoom-in"]');
  await doctor.click('[data-testid="image-zoom-in"]');
  const z1 = Number(await doctor.getAttribute('[data-testid="image-canvas"]', 'data-zoom'));
  assert.ok(z1 > z0 * 2, `zoomed in (${z0} -> ${z1})`);
  const box = await doctor.locator('[data-testid="image-canvas"]').boundingBox();
  if (box) {
    await doctor.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await doctor.mouse.down();
    await doctor.mouse.move(box.x + box.width / 2 + 80, box.y + box.height / 2 + 40);
    await doctor.mouse.up();
  }
  await screenshot(doctor, 'image-viewer-doctor');
  await doctor.click('[data-testid="image-close"]');
  await screenshot(station, 'image-sent-station');
  // The thin-link test's pages get the machine's cores.
  await doctor.context().close();
  await station.context().close();
});

test('a 1 MB image reaches a doctor on 200 kbit/s / 150 ms (target: a minute), camera and audio flowing', async () => {
  // As soon as both are in the call: the image is reserved ahead of the camera from its start
  // (crates/sfu/src/vitals.rs, image_reservation), not once the estimate has settled.
  const room = `${ROOM}-thin`;
  const doctor = await join('doctor-thin', { identity: 'dr2', name: 'BS. Bình', role: 'doctor' }, { room, link: { downKbps: 200, upKbps: 1000, latencyMs: 150 } });
  const station = await join('station-thin', { identity: 'tyt2', name: 'Trạm y tế', role: 'station' }, { room });
  const stationId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await station.waitForFunction(() => /** @type {any} */ (window).__kham.vitalsReady(), null, { timeout: 20_000 });
  await doctor.waitForFunction(() => /** @type {any} */ (window).__kham.vitalsReady(), null, { timeout: 20_000 });
  // The camera reaches the doctor before the image goes.
  await doctor.waitForFunction(async (id) => {
    const c = /** @type {any} */ (window).__kham;
    let frames = 0;
    (await c.pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && c.participantForMid(s.mid) === id) frames += s.framesDecoded || 0;
    });
    return frames > 0;
  }, stationId, { timeout: 20_000, polling: 500 });

  const file = path.join(dir, 'xray.bmp');
  const bytes = bmp(592, 592);
  SENT.push(bytes);
  fs.writeFileSync(file, bytes);
  const hash = crypto.createHash('sha256').update(bytes).digest('hex');
  await watchProgress(station, 'out');
  await watchProgress(doctor, 'in');
  // The doctor's audio delay before, during and after the transfer (audio-delay.mjs).
  await startAudioProbe(doctor, stationId);
  const tBefore = Date.now();
  await doctor.waitForTimeout(PHASE_MS);
  const audioBefore = await audioPackets(doctor, stationId);
  const t0 = Date.now();
  await station.setInputFiles('[data-testid="image-send"]', file);
  await doctor.waitForSelector('[data-testid="shared-image"][data-sha256]', { timeout: 90_000 });
  const t1 = Date.now();
  const took = t1 - t0;
  const audioAfter = await audioPackets(doctor, stationId);
  await doctor.waitForTimeout(PHASE_MS);
  const delay = summarise(await stopAudioProbe(doctor), { before: [tBefore, t0], during: [t0, t1], after: [t1, Date.now()] });
  const got = await doctor.getAttribute('[data-testid="shared-image"]', 'data-sha256');
  const samples = audioAfter.samples - audioBefore.samples;
  const concealed = (100 * (audioAfter.concealed - audioBefore.concealed)) / Math.max(1, samples);
  console.log(`1 MB image over 200 kbit/s / 150 ms: ${(took / 1000).toFixed(1)} s (${((bytes.length * 8) / took).toFixed(0)} kbit/s of image); `
    + `doctor's audio ${(samples / 48_000).toFixed(1)} s played, ${concealed.toFixed(2)} % concealed\n${formatSummary(delay)}`);
  assert.equal(got, hash, 'the doctor has exactly the bytes sent');
  // The target is under a minute (56-57 s here with the delay-sized window, printed
  // above and by benches/browser/image-thin.mjs); the link alone allows ~53 s, so a bound at
  // the target would make this a timed test on a few seconds' margin. It guards against a
  // transfer that stalls or loses its reservation (84-99 s before images were reserved).
  assert.ok(took < 75_000, `arrived within 75 s (${took} ms; target: under a minute)`);
  // A doctor must be able to talk meanwhile: the image's window keeps its queue near 150 ms
  // (web-client/sdk/image-window.js). With a fixed 64 KiB window the audio came 3.3 s later.
  // Usually +420-540 ms (p95); clean-clone suite runs have given +765 and +1122 (not explained:
  // the queue was gone and the audio still late), so the bound guards against the 3.3 s
  // regression with room for that spread; benches/browser/image-thin.mjs reports the figure.
  assert.ok(delay.during.playoutP95 < 1500, `the doctor's audio stays within 1.5 s of its delay before (+${delay.during.playoutP95} ms)`);
  await station.waitForSelector('[data-testid="image-item"][data-direction="out"] [data-testid="shared-image"]', { timeout: 10_000 });
  const out = await progressSeen(station);
  const inn = await progressSeen(doctor);
  assert.ok(out.some((p) => p > 0 && p < 100), 'the sender\'s bar moved through intermediate values');
  assert.ok(inn.some((p) => p > 0 && p < 100), 'the receiver\'s bar moved through intermediate values');
  assert.ok(samples / 48_000 >= 0.8 * (took / 1000), 'audio kept playing during the transfer');
  // Loose: a thin link conceals a few percent (4-5 % in benches/browser/image-thin.mjs).
  assert.ok(concealed < 15, `audio concealment stays low (${concealed.toFixed(2)} %)`);
  await doctor.context().close();
  await station.context().close();
});

test('a file past the size limit is refused with a clear message', async () => {
  const page = await newPage(browser, { name: 'big' });
  await page.goto(await kham.joinLink({ room: ROOM, identity: 'big', name: 'Người gửi', role: 'station' }));
  await page.click('[data-testid="join"]:not([disabled])');
  await page.waitForSelector(visible('call'), { timeout: 30_000 });
  const file = path.join(dir, 'huge.bmp');
  fs.writeFileSync(file, Buffer.alloc(9 * 1024 * 1024));
  await page.setInputFiles('[data-testid="image-send"]', file);
  await page.waitForSelector('#toast:not([hidden])');
  assert.match(await page.textContent('#toast') || '', /quá lớn/, 'told in Vietnamese that it is too large');
  assert.equal(await page.$$eval('[data-testid="image-item"]', (els) => els.length), 0, 'nothing was sent');
  await page.context().close();
});

test('the server logged none of the images\' bytes', () => {
  const log = kham.log();
  assert.ok(log.length > 0, 'the server logged something');
  for (const bytes of SENT) {
    // Runs of the picture's noise as hex, as base64, and as a Rust byte list (`{:?}`).
    for (const at of [100, bytes.length >> 1, bytes.length - 40]) {
      const run = bytes.subarray(at, at + 12);
      for (const form of [run.toString('hex'), run.toString('base64').slice(0, 12), [...run].join(', ')]) {
        assert.equal(log.includes(form), false, `image bytes at ${at} (${form}) are not in the server log`);
      }
    }
  }
  // No frame of the image channel printed as a byte list (version 1, an image kind, forwarded
  // or not).
  assert.doesNotMatch(log, /\[1, (3|4|5|6|131|132|133|134), \d+, \d+, \d+/, 'no image frame in the server log');
});

/** Audio samples `page` played from `id` so far, and how many were concealed. */
function audioPackets(page, id) {
  return page.evaluate(async (id) => {
    const c = /** @type {any} */ (window).__kham;
    let n = { samples: 0, concealed: 0 };
    (await c.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && c.participantForMid(s.mid) === id) {
        n = { samples: s.totalSamplesReceived, concealed: s.concealedSamples };
      }
    });
    return n;
  }, id);
}
