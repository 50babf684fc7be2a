// Which RTCRtpSender.setParameters changes make Chromium's VP8 simulcast encoder emit keyframes?
// A doctor publishes in a kham room (adaptation off, one observer so the layers stay needed);
// each step changes the doctor's encodings and prints every encoding's keyFramesEncoded and
// pliCount 2.5 s later; then raises against cuts of maxBitrate through the SDK. Result (2026-12-04) in crates/sfu/src/dynacast.rs, "KEYFRAME COSTS".
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
  // The production path: publish_layers as the server sends it, applied by the SDK.
  const mid = pc.getTransceivers().find((t) => t.sender === sender).mid;
  const sdk = async (name, layers) => {
    window.__kham._onPublishLayers(mid, layers);
    await sleep(2500); log.push(`sdk ${name}: ${await kf()} ${JSON.stringify(sender.getParameters().encodings.map((e) => [e.rid, e.maxBitrate, e.maxFramerate, e.scaleResolutionDownBy]))}`);
  };
  const L = (q, h, f) => [{ rid: 'q', active: true, max_bitrate: q }, { rid: 'h', active: true, max_bitrate: h }, { rid: 'f', active: true, max_bitrate: f }];
  await sdk('caps 100k/300k/700k', L(100000, 300000, 700000));
  await sdk('caps 60k/200k/600k', L(60000, 200000, 600000));
  await sdk('caps 120k/400k/900k', L(120000, 400000, 900000));
  await sdk('defaults', L(undefined, undefined, undefined));
  await sdk('idle', L(undefined, undefined, undefined));
  // Raises against cuts: the three caps scaled together, alternately up and down.
  const kq = async () => { const st = await pc.getStats(); let n = 0; st.forEach((x) => { if (x.type === 'outbound-rtp' && x.kind === 'video' && x.rid === 'q') n = x.keyFramesEncoded; }); return n; };
  const scaled = (k) => L(Math.round(150000 * k), Math.round(500000 * k), Math.round(1500000 * k));
  const tally = { raises: 0, cuts: 0, keyframesAfterRaises: 0, keyframesAfterCuts: 0 };
  let prev = 1;
  for (const k of [0.4, 1, 0.4, 1, 0.6, 0.9, 0.5, 1, 0.3, 0.8, 0.4, 1, 0.5, 0.7, 0.35, 1]) {
    const before = await kq();
    window.__kham._onPublishLayers(mid, scaled(k));
    await sleep(2000);
    const n = (await kq()) - before;
    if (k > prev) { tally.raises++; tally.keyframesAfterRaises += n; } else { tally.cuts++; tally.keyframesAfterCuts += n; }
    prev = k;
  }
  log.push(`caps raised and cut through the SDK: ${JSON.stringify(tally)}`);
  return log.concat(window.__pl);
});
console.log(out.join('\n'));
await browser.close(); await kham.stop();
