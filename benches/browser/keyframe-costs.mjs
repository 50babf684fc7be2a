// Which RTCRtpSender.setParameters changes make Chromium's VP8 simulcast encoder emit keyframes?
// A doctor publishes in a kham room (adaptation off, one observer so the layers stay needed);
// each step changes the doctor's encodings and prints every encoding's keyFramesEncoded and
// pliCount 2.5 s later. Result (2026-12-04) in crates/sfu/src/dynacast.rs, "KEYFRAME COSTS".
//   cargo build --release -p kham-server && KHAM_BIN=target/release/kham node benches/browser/keyframe-costs.mjs
import { launchChromium, newPage } from '../../tests/browser/browser.mjs';
import { startKham } from '../../tests/browser/server.mjs';
const kham = await startKham({ extraEnv: { KHAM_MEDIA__ADAPTATION: 'false' } });
const browser = await launchChromium();
async function join(who) {
  const page = await newPage(browser, { name: who.identity, width: 1280, height: 800 });
  await page.goto(await kham.joinLink(who));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  await page.evaluate(() => { const w = window; w.__pl = []; w.__kham.addEventListener('publishlayers', (e) => w.__pl.push(JSON.stringify(e.detail.layers))); });
  await page.click('[data-testid="join"]');
  return page;
}
const doctor = await join({ room: 'kf', identity: 'dr', name: 'Dr', role: 'doctor' });
const obs = await join({ room: 'kf', identity: 'obs', name: 'Obs', role: 'observer' });
await new Promise((r) => setTimeout(r, 10000));
const out = await doctor.evaluate(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const pc = window.__kham.pc;
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const kf = async () => {
    const s = await pc.getStats(); const r = {};
    s.forEach((x) => { if (x.type === 'outbound-rtp' && x.kind === 'video') r[x.rid] = `${x.keyFramesEncoded}k ${x.pliCount}pli ${x.frameHeight}p ${Math.round(x.framesPerSecond || 0)}fps ${x.active === false ? 'off' : ''}`; });
    return JSON.stringify(r) + ` pl=${window.__pl.length}`;
  };
  const log = ['warm ' + await kf()];
  const step = async (name, fn) => {
    const p = sender.getParameters(); fn(p.encodings); await sender.setParameters(p);
    await sleep(2500); log.push(`${name}: ${await kf()}`);
  };
  await step('idle', () => {});
  await step('idle', () => {});
  await step('f maxBitrate 600k', (e) => { e[2].maxBitrate = 600000; });
  await step('f maxBitrate 1.2M', (e) => { e[2].maxBitrate = 1200000; });
  await step('h maxBitrate 250k', (e) => { e[1].maxBitrate = 250000; });
  await step('h maxBitrate 500k', (e) => { e[1].maxBitrate = 500000; });
  await step('q maxBitrate 60k', (e) => { e[0].maxBitrate = 60000; });
  await step('q maxBitrate 30k', (e) => { e[0].maxBitrate = 30000; });
  await step('q maxBitrate 150k', (e) => { e[0].maxBitrate = 150000; });
  await step('q maxFramerate 15', (e) => { e[0].maxFramerate = 15; });
  await step('q maxFramerate 7.5', (e) => { e[0].maxFramerate = 7.5; });
  await step('q scale 8', (e) => { e[0].scaleResolutionDownBy = 8; });
  await step('q scale 4', (e) => { e[0].scaleResolutionDownBy = 4; });
  await step('f inactive', (e) => { e[2].active = false; });
  await step('f active', (e) => { e[2].active = true; });
  await step('idle', () => {});
  return log.concat(window.__pl);
});
console.log(out.join('\n'));
await browser.close(); await kham.stop();
