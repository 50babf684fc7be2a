// What a consult costs a station in mobile data (issue 14: stations on prepaid data care), in
// Chromium through kham on loopback: a doctor and a station in one room, then four phases of
// 60 s each, measured on the station's transport (bytes sent and received, everything on the
// wire above UDP: RTP, RTCP, STUN, DTLS):
//   1. video both ways (the fake 720p camera, adaptation on, the link unconstrained);
//   2. audio-only mode: the station asks for no video (`setAudioOnly(true)`) and mutes its
//      camera (black frames at the encoder's minimum);
//   3. the same with both audio senders capped at 16 kbit/s (`maxBitrate`, what the server's
//      `audio_rate` asks of publishers when a listener's link is thin);
//   4. the same with the station's camera track stopped instead of muted (no video sent at all).
// Prints kbit/s each way and MB per 10 minutes for each phase.
//   cargo build --release -p kham-server && KHAM_BIN=target/release/kham node benches/browser/audio-cost.mjs
import { launchChromium, newPage } from '../../tests/browser/browser.mjs';
import { startKham } from '../../tests/browser/server.mjs';

const PHASE_MS = Number(process.env.PHASE_MS || 60_000);
const kham = await startKham();
const browser = await launchChromium();
/** @param {{room: string, identity: string, name: string, role: string}} who */
async function join(who) {
  const page = await newPage(browser, { name: who.identity, width: 1280, height: 800 });
  await page.goto(await kham.joinLink(who));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  return page;
}
const room = `cost-${Date.now().toString(36)}`;
const doctor = await join({ room, identity: 'bs-cost', name: 'BS', role: 'doctor' });
const station = await join({ room, identity: 'tram-cost', name: 'Tram', role: 'station' });
await station.waitForFunction(() => {
  const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-video"]'));
  return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 30;
}, null, { timeout: 60_000 });

/** The station's transport byte counters now. */
const bytes = () => station.evaluate(async () => {
  let sent = 0;
  let received = 0;
  (await /** @type {any} */ (window).__kham.pc.getStats()).forEach((/** @type {any} */ s) => {
    if (s.type === 'transport') {
      sent += s.bytesSent;
      received += s.bytesReceived;
    }
  });
  return { sent, received };
});
/** Caps (or uncaps) the audio sender of a page at `bps`. */
const capAudio = (/** @type {import('playwright-core').Page} */ page, /** @type {number|null} */ bps) => page.evaluate(async (bps) => {
  const sender = /** @type {any} */ (window).__kham.pc.getSenders().find((/** @type {any} */ s) => s.track?.kind === 'audio');
  const p = sender.getParameters();
  if (bps === null) delete p.encodings[0].maxBitrate;
  else p.encodings[0].maxBitrate = bps;
  await sender.setParameters(p);
}, bps);

/** @param {string} name */
async function phase(name) {
  // 5 s for the change to settle, then the measured window.
  await new Promise((r) => setTimeout(r, 5_000));
  const a = await bytes();
  await new Promise((r) => setTimeout(r, PHASE_MS));
  const b = await bytes();
  const secs = PHASE_MS / 1000;
  const up = ((b.sent - a.sent) * 8) / secs / 1000;
  const down = ((b.received - a.received) * 8) / secs / 1000;
  const mb10 = ((b.sent - a.sent + b.received - a.received) / secs) * 600 / 1e6;
  console.log(`${name}: station sends ${up.toFixed(1)} kbit/s, receives ${down.toFixed(1)} kbit/s; ${mb10.toFixed(1)} MB per 10 minutes`);
}

console.log(`Chromium ${browser.version()}, ${PHASE_MS / 1000} s per phase, loopback`);
await phase('video both ways');
await station.evaluate(() => {
  const k = /** @type {any} */ (window).__kham;
  k.setAudioOnly(true);
  k.setMuted('video', true);
});
await phase('audio-only, camera muted');
await capAudio(station, 16_000);
await capAudio(doctor, 16_000);
await phase('audio-only, camera muted, Opus capped at 16 kbit/s both ways');
await station.evaluate(() => {
  const k = /** @type {any} */ (window).__kham;
  for (const s of k.pc.getSenders()) if (s.track?.kind === 'video') s.track.stop();
});
await phase('audio-only, camera stopped, Opus capped at 16 kbit/s both ways');
await browser.close();
await kham.stop();
