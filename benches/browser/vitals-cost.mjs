// What the station's simulated monitor costs a doctor's downlink (issue 16): a station with and
// without `vitals=sim`, alternating, and an unshaped doctor; over a window, the doctor's transport
// bytes that are not RTP (data channels, their SCTP/DTLS/UDP overhead, RTCP, STUN), and the data
// channel messages received. With vitals minus without is the monitor's cost on the wire.
// Prints one line per call.
//
//   cargo build -p kham-server && RUNS=2 KHAM_BIN=target/debug/kham node benches/browser/vitals-cost.mjs

import { launchChromium } from '../../tests/browser/browser.mjs';
import { joinShaped } from '../../tests/browser/shaped.mjs';
import { startKham } from '../../tests/browser/server.mjs';

const RUNS = Number(process.env.RUNS || 2);
const WARMUP_MS = 8_000;
const WINDOW_MS = 15_000;

/** The doctor's received bytes: all, RTP, and data-channel messages. */
const counters = (page) => page.evaluate(async () => {
  const c = /** @type {any} */ (window).__kham;
  const o = { transport: 0, rtp: 0, messages: 0, dcBytes: 0 };
  (await c.pc.getStats()).forEach((/** @type {any} */ s) => {
    if (s.type === 'transport') o.transport += s.bytesReceived;
    if (s.type === 'inbound-rtp') o.rtp += s.bytesReceived + (s.headerBytesReceived || 0);
    if (s.type === 'data-channel') {
      o.messages += s.messagesReceived;
      o.dcBytes += s.bytesReceived;
    }
  });
  return o;
});

const kham = await startKham();
const browser = await launchChromium();
try {
  for (let run = 1; run <= RUNS; run++) {
    for (const vitals of [false, true]) {
      const room = `vitals-cost-${process.pid}-${run}-${vitals}`;
      const join = (name, who, query) => joinShaped(browser, kham, room, name, who, null, query);
      const doctor = await join('doctor', { identity: 'dr', name: 'BS. An', role: 'doctor' }, '');
      const station = await join('station', { identity: 'tyt', name: 'Tram', role: 'station' }, vitals ? '&vitals=sim' : '');
      await doctor.waitForTimeout(WARMUP_MS);
      const a = await counters(doctor);
      await doctor.waitForTimeout(WINDOW_MS);
      const b = await counters(doctor);
      const s = WINDOW_MS / 1000;
      const nonRtp = ((b.transport - a.transport) - (b.rtp - a.rtp)) * 8 / s / 1000;
      console.log(`run ${run}, vitals ${vitals ? 'on ' : 'off'}: doctor's non-RTP ${nonRtp.toFixed(1)} kbit/s, `
        + `${((b.messages - a.messages) / s).toFixed(1)} data-channel messages/s, ${((b.dcBytes - a.dcBytes) * 8 / s / 1000).toFixed(1)} kbit/s of their payload`);
      await doctor.context().close();
      await station.context().close();
    }
  }
} finally {
  await browser.close();
  await kham.stop();
}
