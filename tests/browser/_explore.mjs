import { launchChromium, newPage } from './browser.mjs';
import { startKham } from './server.mjs';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const adaptation = process.env.ADAPT !== 'off';
const down = Number(process.env.DOWN || 300) * 1000 / 8;
const subRole = process.env.SUBROLE || 'observer';
const kham = await startKham({ extraEnv: adaptation ? { KHAM_LOG__LEVEL: 'kham=debug' } : { KHAM_MEDIA__ADAPTATION: 'false' } });
const browser = await launchChromium();
const room = 'x' + Date.now();
async function open(name, who, cond, opts = {}) {
  const page = await newPage(browser, { name, ...opts });
  if (cond) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', cond);
    page.__cdp = cdp;
  }
  await page.goto(await kham.joinLink({ room, ...who }));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  await page.evaluate(() => {
    const w = window; w.__log = [];
    w.__kham.addEventListener('videostate', (e) => w.__log.push({ t: Date.now(), type: 'video_state', d: e.detail }));
    w.__kham.addEventListener('connectionstate', (e) => w.__log.push({ t: Date.now(), type: 'conn', d: e.detail })); w.__kham.addEventListener('closed', (e) => w.__log.push({ t: Date.now(), type: 'closed', d: e.detail }));
    w.__kham.addEventListener('quality', (e) => w.__log.push({ t: Date.now(), type: 'quality', d: e.detail }));
  });
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  return page;
}
const doctor = await open('doctor', { identity: 'dr', name: 'Doctor', role: 'doctor' });
const free = await open('free', { identity: 'free', name: 'Free', role: subRole }, null);
const weak = process.env.WEAK === '0' ? null : await open('weak', { identity: 'weak', name: 'Weak', role: process.env.WEAKROLE || subRole }, {
  offline: false, latency: 150, downloadThroughput: down, uploadThroughput: 300000 / 8, packetLoss: Number(process.env.LOSS ?? 3), packetQueueLength: Number(process.env.QUEUE || 0),
});
const doctorId = await doctor.evaluate(() => window.__kham.me.id);
const stats = (page) => page.evaluate(async (doctorId) => {
  const c = window.__kham; if (!c.pc) return { closed: true, v: null, a: null, tp: null, vs: [] }; const out = { v: null, a: null, tp: null, vs: [...c.videoStates.values()] };
  (await c.pc.getStats()).forEach((s) => {
    if (s.type === 'transport') out.tp = { rx: s.bytesReceived, tx: s.bytesSent };
    if (s.type !== 'inbound-rtp') return;
    if (c.participantForMid(s.mid) !== doctorId) return;
    if (s.kind === 'video') out.v = { h: s.frameHeight, w: s.frameWidth, dec: s.framesDecoded, fr: s.freezeCount, frd: s.totalFreezesDuration, fps: s.framesPerSecond, bytes: s.bytesReceived, lost: s.packetsLost, pli: s.pliCount, nack: s.nackCount };
    if (s.kind === 'audio') out.a = { conc: s.concealedSamples, tot: s.totalSamplesReceived, pk: s.packetsReceived, bytes: s.bytesReceived, lost: s.packetsLost };
  });
  return out;
}, doctorId);
const out = await doctor.evaluate(async () => { const r = []; (await window.__kham.pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') r.push(s); }); return r; });
let prev = {};
const t0 = Date.now();
for (let i = 0; i < Number(process.env.N || 20); i++) {
  await sleep(2000);
  if (process.env.DROP_AT && i === Number(process.env.DROP_AT)) { console.log('DROP'); await weak.__cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 150, downloadThroughput: Number(process.env.DROP_TO || 60) * 125, uploadThroughput: 300000 / 8, packetLoss: 0, packetQueueLength: 0 }); }
  const line = [];
  for (const [n, p] of [['free', free], ['weak', weak]]) { if (!p) continue;
    const s = await stats(p);
    const pv = prev[n]; if (s.closed) { line.push(n + ' CLOSED'); continue; }
    const kbps = pv && s.tp ? Math.round((s.tp.rx - pv.tp.rx) * 8 / 2000) : 0;
    const vk = pv && s.v && pv.v ? Math.round((s.v.bytes - pv.v.bytes) * 8 / 2000) : 0;
    line.push(`${n}: rx ${kbps}k v ${vk}k ${s.v ? `${s.v.w}x${s.v.h} dec ${s.v.dec} frz ${s.v.fr}/${s.v.frd?.toFixed(1)} fps ${s.v.fps} lost ${s.v.lost}` : 'nov'} a ${s.a ? `pk ${s.a.pk} conc ${s.a.conc}/${s.a.tot}` : 'noa'} vs ${JSON.stringify(s.vs.map((x) => [x.participant?.slice(0, 6), x.paused, x.reason, x.layer?.spatial]))}`);
    prev[n] = s;
  }
  const q = await doctor.evaluate(async () => { const r = []; (await window.__kham.pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') r.push(`${s.rid}:${s.frameHeight}@${Math.round(s.framesPerSecond||0)} ${s.qualityLimitationReason}`); }); return r.join(' '); });
  console.log(`t=${Math.round((Date.now() - t0) / 1000)} ${line.join(' | ')} | doc ${q}`);
}
for (const [n, p] of [['free', free], ['weak', weak]]) { if (!p) continue;
  const sdp = await p.evaluate(() => { const pc = window.__kham.pc; return pc ? [pc.currentRemoteDescription?.sdp.split('\n').filter((l) => /rtpmap:\d+ (red|opus)/i.test(l)).join(' ; '), pc.currentLocalDescription?.sdp.split('\n').filter((l) => /rtpmap:\d+ (red|opus)/i.test(l)).join(' ; ')] : null; }); console.log(n, 'SDP', JSON.stringify(sdp));
  const codecs = await p.evaluate(async () => { const r = []; const st = await window.__kham.pc.getStats(); st.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') { const c = st.get(s.codecId); r.push({ mime: c && c.mimeType, pt: c && c.payloadType, pk: s.packetsReceived, bytes: s.bytesReceived, fec: s.fecPacketsReceived, conc: s.concealedSamples, tot: s.totalSamplesReceived, lost: s.packetsLost }); } }); return r; }); console.log(n, 'audio', JSON.stringify(codecs));
  const wl = await p.evaluate(() => window.__log);
  for (const e of wl) console.log(n, e.t - t0, e.type, JSON.stringify(e.type === 'conn' || e.type === 'closed' ? e.d : e.type === 'quality' ? e.d.participants.map((q) => [q.id.slice(0, 6), q.quality]) : e.d.tracks.map((x) => [x.participant?.slice(0, 6), x.paused, x.reason, x.layer?.spatial, x.layer?.temporal])));
}
console.log('ids', await doctor.evaluate(() => window.__kham.me.id), await free.evaluate(() => window.__kham.me.id), weak && await weak.evaluate(() => window.__kham.me.id));
const tok = await kham.adminToken(); const rr = await fetch(`${kham.baseUrl}/api/admin/rooms/${room}`, { headers: { authorization: `Bearer ${tok}` } }); console.log('ADMIN', rr.status, (await rr.text()).slice(0, 6000));
const fq = await free.evaluate(() => [...document.querySelectorAll('[data-participant-id]')].map((e) => [e.getAttribute('data-participant-id'), e.dataset.quality]));
console.log('free tiles', JSON.stringify(fq));
require_log: {
  const fs = await import('node:fs'); fs.writeFileSync('/tmp/wl/kham.log', kham.log());
}
await browser.close(); await kham.stop();
