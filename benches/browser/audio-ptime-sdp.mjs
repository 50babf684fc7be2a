// Does Chromium's Opus sender follow `a=ptime` in the remote description on a renegotiation?
// Two peer connections in one page; the answer is rewritten with a=ptime before it is applied;
// prints packets a second and bytes a packet after each renegotiation (outbound-rtp).
//   node benches/browser/audio-ptime-sdp.mjs
// Seen 2026-12-05 (Chromium 148): no ptime 50.0 packets/s; ptime 60 -> 18.5 (sampled during the
// switch; 16.7 steady); ptime 40 -> 27.0; removed -> 50.0. kham's SDK relies on this
// (`web-client/sdk/layers.js` withPacketTime); setParameters has no packet time (audio-ptime.mjs).
import { launchChromium, newPage } from '../../tests/browser/browser.mjs';
const browser = await launchChromium();
const page = await newPage(browser);
const http = await import('node:http'); const srv = http.createServer((q, r) => r.end('<html></html>')).listen(18777); await page.goto('http://localhost:18777/');
const out = await page.evaluate(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const s = await navigator.mediaDevices.getUserMedia({ audio: true });
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  a.addTransceiver(s.getAudioTracks()[0], { direction: 'sendonly' });
  const munge = (sdp, pt) => pt ? sdp.replace(/(m=audio[^\r\n]*\r\n)/, `$1a=ptime:${pt}\r\n`) : sdp;
  const rate = async () => {
    const st = async () => { let r; (await a.getStats()).forEach((x) => { if (x.type === 'outbound-rtp') r = x; }); return r; };
    const x = await st(); await sleep(2000); const y = await st();
    return `${((y.packetsSent - x.packetsSent) / 2).toFixed(1)} pkt/s ${((y.bytesSent - x.bytesSent) / Math.max(1, y.packetsSent - x.packetsSent)).toFixed(0)} B/pkt`;
  };
  const nego = async (pt) => {
    const o = await a.createOffer(); await a.setLocalDescription(o);
    await b.setRemoteDescription(o); const an = await b.createAnswer(); await b.setLocalDescription(an);
    await a.setRemoteDescription({ type: 'answer', sdp: munge(an.sdp, pt) });
  };
  const log = [];
  await nego(0); await sleep(1500); log.push('initial ' + await rate());
  await nego(60); await sleep(1500); log.push('renegotiated ptime 60 ' + await rate());
  await nego(40); await sleep(1500); log.push('renegotiated ptime 40 ' + await rate());
  await nego(0); await sleep(1500); log.push('renegotiated no ptime ' + await rate());
  await nego(20); await sleep(1500); log.push('renegotiated ptime 20 ' + await rate());
  return log;
});
console.log(out.join('\n'));
await browser.close(); srv.close();
