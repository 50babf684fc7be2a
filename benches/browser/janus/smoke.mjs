// Smoke test of configs/janus.mjs without the benchmark driver: two Chromium pages (publisher,
// subscriber), Janus in its netns, both behind kham-relay; prints the subscriber's inbound video
// and the relays' figures; exits 1 if the subscriber decoded no frame.
//
//   sudo node benches/browser/janus/smoke.mjs [--sub-rate 300kbit] [--pub-rate 1mbit|none] [--seconds 20]
//        [--remb BPS,...]   (REMB caps from Janus spread over the run: does Chromium obey them?)
// Needs: target/release/kham-relay (cargo build --release -p kham-relay), npm ci in
// tests/browser (playwright-core), /usr/bin/chromium, root.
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import http from 'node:http';
import { chromium } from '../../../tests/browser/node_modules/playwright-core/index.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from '../../../tests/browser/browser.mjs';
import { start } from '../configs/janus.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const { values: opt } = parseArgs({
  options: {
    'sub-rate': { type: 'string', default: '1mbit' },
    'pub-rate': { type: 'string', default: '1mbit' },
    delay: { type: 'string', default: '50ms' },
    seconds: { type: 'string', default: '20' },
    'relay-ip': { type: 'string', default: '127.0.0.9' },
    // Asks Janus to cap the publisher with REMB at these bit/s (comma-separated, spread over the
    // run: a VideoRoom `configure` with `bitrate`), to see whether Chromium obeys REMB while
    // transport-cc is negotiated: the publisher's sent rate and its BWE target follow the cap.
    remb: { type: 'string' },
  },
});
const relayBin = process.env.KHAM_RELAY || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'release', 'kham-relay');
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kham-janus-smoke-'));
const log = (m) => console.log(`[${(performance.now() / 1000).toFixed(1)} s] ${m}`);

// browser.mjs's flags already include the fake camera and microphone; the y4m fake camera of
// the benchmark is the driver's business (the built-in test pattern is 640x480 unless asked
// otherwise, so the publisher asks for 1280x720).
// getUserMedia needs a secure context, which about:blank is not; http://127.0.0.1 is.
const server = http.createServer((_, res) => res.end('<!doctype html><title>janus smoke</title><body></body>'));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: false, args: CHROMIUM_ARGS });
const page = async (name) => {
  const p = await (await browser.newContext()).newPage();
  await p.goto(pageUrl);
  p.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && log(`[${name}] ${m.text()}`));
  p.on('pageerror', (e) => log(`[${name} pageerror] ${e.message}`));
  return p;
};
const [publisher, subscriber] = [await page('publisher'), await page('subscriber')];
let session;
let code = 1;
try {
  session = await start({
    name: 'janus', publisher, subscriber, relayBin, relayIp: opt['relay-ip'],
    linkArgs: {
      // --pub-rate none: the publisher's link only delays (all three layers flow).
      publisher: [...(opt['pub-rate'] === 'none' ? [] : ['--rate', opt['pub-rate'], '--uplink-rate', opt['pub-rate']]), '--delay', opt.delay],
      subscriber: ['--rate', opt['sub-rate'], '--delay', opt.delay],
    },
    seed: 1, durationS: Number(opt.seconds), workDir, log,
  });
  const inbound = () => subscriber.evaluate(async () => {
    const stats = await window.__janus.pc.getStats();
    const v = [...stats.values()].find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
    return v && { frameWidth: v.frameWidth, frameHeight: v.frameHeight, framesDecoded: v.framesDecoded, bytesReceived: v.bytesReceived, packetsLost: v.packetsLost, framesPerSecond: v.framesPerSecond };
  });
  const outbound = () => publisher.evaluate(async () => {
    const stats = await window.__janus.pc.getStats();
    return [...stats.values()].filter((s) => s.type === 'outbound-rtp' && s.kind === 'video')
      .map((s) => `${s.rid}:${s.frameHeight ?? '-'}p ${Math.round(s.bytesSent / 1000)}kB ${s.qualityLimitationReason}`).join(', ');
  });
  const seconds = Number(opt.seconds);
  const twcc = await publisher.evaluate(() => /transport-wide-cc/.test(window.__janus.pc.remoteDescription.sdp));
  log(`publisher: transport-cc negotiated: ${twcc}`);
  let prev = null;
  let prevSent = null;
  for (let t = 2; t <= seconds; t += 2) {
    // --remb A,B,...: cap i from (i + 1) / (n + 1) of the run on.
    const caps = opt.remb ? opt.remb.split(',').map(Number) : [];
    const step = caps.findIndex((_, i) => t === 2 * Math.round((seconds * (i + 1)) / (caps.length + 1) / 2));
    if (step >= 0) {
      await publisher.evaluate((b) => window.__janus.send({ janus: 'message', body: { request: 'configure', bitrate: b } }), caps[step]);
      log(`asked Janus to cap the publisher at ${caps[step]} bit/s (REMB)`);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const sent = await publisher.evaluate(async () => {
      let bytes = 0;
      let target = null;
      (await window.__janus.pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') bytes += s.bytesSent;
        if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) target = s.availableOutgoingBitrate;
      });
      return { bytes, target };
    });
    log(`pub video sent ${prevSent === null ? '-' : Math.round(((sent.bytes - prevSent) * 8) / 2000)} kbit/s, BWE target ${sent.target === null ? '-' : Math.round(sent.target / 1000)} kbit/s`);
    prevSent = sent.bytes;
    const v = await inbound();
    const kbps = v && prev ? Math.round(((v.bytesReceived - prev.bytesReceived) * 8) / 2000) : null;
    prev = v;
    const sample = await session.serverSample().catch((e) => ({ error: e.message }));
    log(`sub ${JSON.stringify(v)} ${kbps ?? '-'} kbit/s; janus layer ${JSON.stringify(sample)}; pub ${await outbound()}`);
  }
  // Which path the media took: every pair that carried bytes must lead to a relay address.
  for (const [name, p] of [['publisher', publisher], ['subscriber', subscriber]]) {
    const pairs = await p.evaluate(async () => {
      const stats = await window.__janus.pc.getStats();
      const c = (id) => { const x = stats.get(id); return x && `${x.candidateType} ${x.address || '(hidden)'}:${x.port}`; };
      return [...stats.values()].filter((s) => s.type === 'candidate-pair' && s.bytesReceived + s.bytesSent > 0)
        .map((s) => `${c(s.localCandidateId)} -> ${c(s.remoteCandidateId)} rx ${s.bytesReceived} B tx ${s.bytesSent} B`);
    });
    console.log(`${name} pairs with traffic: ${pairs.join('; ')}`);
  }
  const v = await inbound();
  console.log('subscriber inbound-rtp video:', JSON.stringify(v));
  code = v && v.framesDecoded > 0 ? 0 : 1;
} catch (e) {
  console.error('smoke failed:', e);
} finally {
  if (session) {
    await session.stop();
    for (const { name: side, stats } of session.relays) {
      const r = JSON.parse(fs.readFileSync(stats, 'utf8'));
      for (const c of r.clients) {
        console.log(`relay ${side} client ${c.id} ${c.addr}: up ${c.up.in_packets} pkts ${c.up.in_bytes} B (queue drops ${c.up.dropped_queue_packets}), down ${c.down.in_packets} pkts ${c.down.in_bytes} B -> ${c.down.out_packets} out (queue drops ${c.down.dropped_queue_packets}, lost ${c.down.dropped_loss_packets})`);
      }
      console.log(`relay ${side}: io ${JSON.stringify(r.io)}`);
    }
  }
  await browser.close();
  server.close();
  console.log(`work dir ${workDir}; exit ${code}`);
  process.exit(code);
}
