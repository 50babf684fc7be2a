// Whether the vital signs cost the doctor's audio anything (issue 16: "audio concealment
// unchanged with vitals on"): a doctor on 300 kbit/s / 150 ms (Chromium's network emulation)
// receives a station's camera and audio, with and without the station's simulated monitor
// (`vitals=sim`), alternating, in one run; after a warm-up, the doctor's audio from the station
// is measured over a window. Prints one line per call.
//
//   cargo build -p kham-server && RUNS=2 KHAM_BIN=target/debug/kham node benches/browser/vitals-audio.mjs

import { launchChromium } from '../../tests/browser/browser.mjs';
import { joinShaped, audioFrom } from '../../tests/browser/shaped.mjs';
import { startKham } from '../../tests/browser/server.mjs';

const RUNS = Number(process.env.RUNS || 2);
const LINK = { downKbps: 300, upKbps: 1000, latencyMs: 150 };
const WARMUP_MS = 15_000;
const WINDOW_MS = 20_000;

const kham = await startKham();
const browser = await launchChromium();
try {
  for (let run = 1; run <= RUNS; run++) {
    for (const vitals of [false, true]) {
      const room = `vitals-audio-${process.pid}-${run}-${vitals}`;
      const join = (name, who, link, query) => joinShaped(browser, kham, room, name, who, link, query);
      const doctor = await join('doctor', { identity: 'dr', name: 'BS. An', role: 'doctor' }, LINK, '');
      const station = await join('station', { identity: 'tyt', name: 'Tram', role: 'station' }, null, vitals ? '&vitals=sim' : '');
      const sid = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
      await doctor.waitForTimeout(WARMUP_MS);
      const audio = () => audioFrom(doctor, sid);
      const a0 = await audio();
      await doctor.waitForTimeout(WINDOW_MS);
      const a1 = await audio();
      const ecg = await doctor.evaluate((id) => {
        const s = /** @type {any} */ (window).__vitalsStats?.[id];
        return s?.ecg ? s.ecg.samples : 0;
      }, sid);
      const samples = a1.samples - a0.samples;
      console.log(`run ${run}, vitals ${vitals ? 'on ' : 'off'}: doctor's audio ${(samples / 48_000).toFixed(1)} s of ${WINDOW_MS / 1000}, `
        + `${(100 * (a1.concealed - a0.concealed) / Math.max(1, samples)).toFixed(2)} % concealed; ECG samples received ${ecg}`);
      await doctor.context().close();
      await station.context().close();
    }
  }
} finally {
  await browser.close();
  await kham.stop();
}
