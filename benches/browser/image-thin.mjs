// How long a 1 MB still image takes to reach a doctor whose downlink is 200 kbit/s with 150 ms
// of latency (Chromium's network emulation on the doctor's page), while the station's camera
// and audio flow to it (issue 16: under a minute, audio intact). Prints one line per run, then
// the doctor's audio delay before, during and after the transfer (tests/browser/audio-delay.mjs).
//
//   cargo build -p kham-server && RUNS=2 KHAM_BIN=target/debug/kham node benches/browser/image-thin.mjs
//
// SETTLE_S (default 15): seconds of call before the image is sent (5: as soon as a test would).

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium } from '../../tests/browser/browser.mjs';
import { joinShaped, audioFrom, bmp } from '../../tests/browser/shaped.mjs';
import { startKham } from '../../tests/browser/server.mjs';
import { startAudioProbe, stopAudioProbe, summarise, formatSummary } from '../../tests/browser/audio-delay.mjs';

const RUNS = Number(process.env.RUNS || 1);
const SETTLE_S = Number(process.env.SETTLE_S || 15);
const LINK = { downKbps: 200, upKbps: 1000, latencyMs: 150 };

const kham = await startKham();
const browser = await launchChromium();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kham-image-thin-'));
try {
  for (let run = 1; run <= RUNS; run++) {
    const room = `image-thin-${process.pid}-${run}`;
    const join = (name, who, link) => joinShaped(browser, kham, room, name, who, link);
    const doctor = await join('doctor', { identity: 'dr', name: 'BS. An', role: 'doctor' }, LINK);
    const station = await join('station', { identity: 'tyt', name: 'Tram', role: 'station' }, null);
    const sid = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
    await doctor.waitForFunction(() => /** @type {any} */ (window).__kham.vitalsReady(), null, { timeout: 30_000 });
    // The doctor's estimate settles on the thin link with the camera flowing; the doctor's
    // audio delay is measured over the last 5 s of it, the transfer and 5 s after.
    await doctor.waitForTimeout(Math.max(0, SETTLE_S - 5) * 1000);
    await startAudioProbe(doctor, sid);
    const tBefore = Date.now();
    await doctor.waitForTimeout(Math.min(5, SETTLE_S) * 1000);
    const audio = () => audioFrom(doctor, sid);
    const file = path.join(dir, `photo-${run}.bmp`);
    const bytes = bmp(592, 592);
    fs.writeFileSync(file, bytes);
    const hash = crypto.createHash('sha256').update(bytes).digest('hex');
    const a0 = await audio();
    const t0 = Date.now();
    await station.setInputFiles('[data-testid="image-send"]', file);
    await doctor.waitForSelector('[data-testid="shared-image"][data-sha256]', { timeout: 180_000 });
    const t1 = Date.now();
    const took = (t1 - t0) / 1000;
    const a1 = await audio();
    await doctor.waitForTimeout(5000);
    const delay = summarise(await stopAudioProbe(doctor), { before: [tBefore, t0], during: [t0, t1], after: [t1, Date.now()] });
    const got = await doctor.getAttribute('[data-testid="shared-image"]', 'data-sha256');
    const samples = a1.samples - a0.samples;
    console.log(`run ${run} (sent after ${SETTLE_S} s): ${bytes.length} bytes over ${LINK.downKbps} kbit/s / ${LINK.latencyMs} ms in ${took.toFixed(1)} s `
      + `(${((bytes.length * 8) / took / 1000).toFixed(0)} kbit/s of image), intact ${got === hash}; `
      + `doctor's audio ${(samples / 48_000).toFixed(1)} s played, ${(100 * (a1.concealed - a0.concealed) / Math.max(1, samples)).toFixed(2)} % concealed\n${formatSummary(delay)}`);
    await doctor.context().close();
    await station.context().close();
  }
} finally {
  await browser.close();
  await kham.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
