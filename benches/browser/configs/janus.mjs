// browser-quality configuration "janus": Debian's Janus VideoRoom with simulcast, behind
// kham-relay. Setup and Janus config: benches/browser/janus/README.md.
//
// Network path: Janus runs in a netns (10.77.0.2, see janus/janus.sh) and announces
// ctx.relayIp (nat_1_1_mapping). Two relays, one per side, so each browser gets its own link
// spec whatever order the pages' datagrams arrive in:
//   publisher  -> relayIp:20000-20019        -> 10.77.0.2:20000-20019 (linkArgs.publisher)
//   subscriber -> relayIp+100:20000-20019    -> 10.77.0.2:20000-20019 (linkArgs.subscriber)
// The subscriber page rewrites Janus's candidates from relayIp to relayIp+100 (Janus has one
// nat_1_1_mapping); both pages drop their own 10.77.0.x candidates from what they send to Janus,
// which could otherwise reach them over the veth, past the relay.
import { execFile } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { serveBlank } from '../blank.mjs';
import { specEntry, startRelay, subscriberRelayIp } from '../relay.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const JANUS_SH = path.join(HERE, '..', 'janus', 'janus.sh');
const JANUS_IP = '10.77.0.2';
const PORTS = '20000-20019'; // janus.sh's default rtp_port_range
const ROOM = 1234; // janus.plugin.videoroom.jcfg.in
// Janus numbers substreams 0..2 from the lowest; the publisher's rids in that order.
const RIDS = ['q', 'h', 'f'];

/** Janus directories whose namespace, veth and process `prepare` brought up. */
const prepared = new Set();

/**
 * Creates Janus's network namespace and veth and starts Janus, before any browser exists: a
 * network change while a page loads fails its requests with net::ERR_NETWORK_CHANGED (seen in
 * the full run: another configuration's page never showed its join button). The driver calls
 * it; `start` does it itself when it was not called (smoke.mjs).
 * @param {{workDir: string, relayIp: string, log: (m: string) => void}} ctx
 */
export async function prepare(ctx) {
  prepared.add(await up(ctx));
}

/** `janus.sh up` in the configuration's work directory; resolves with that directory. */
async function up(/** @type {{workDir: string, relayIp: string, log: (m: string) => void}} */ ctx) {
  const dir = path.join(ctx.workDir, 'janus');
  fs.mkdirSync(dir, { recursive: true });
  const out = await promisify(execFile)(JANUS_SH, ['up', dir, ctx.relayIp]);
  ctx.log(out.stdout.trim());
  return dir;
}

/** @param {any} ctx see benches/browser/driver.mjs */
export async function start(ctx) {
  const dir = path.join(ctx.workDir, 'janus');
  fs.mkdirSync(dir, { recursive: true });
  const subIp = subscriberRelayIp(ctx.relayIp);
  // Janus is up already when the driver called `prepare`; `stop` takes it down either way.
  const started = { relays: [], janus: prepared.delete(dir), blank: null };
  const stop = async () => {
    for (const page of [ctx.publisher, ctx.subscriber]) {
      await page.evaluate(() => window.__janus?.close()).catch(() => {});
    }
    await Promise.all(started.relays.map((r) => r.stop()));
    if (started.janus) await promisify(execFile)(JANUS_SH, ['down', dir]).catch((e) => ctx.log(`janus down: ${e.message}`));
    started.janus = false;
    await started.blank?.close();
    started.blank = null;
  };
  try {
    // getUserMedia needs a secure context: an empty page on http://127.0.0.1.
    started.blank = await serveBlank();
    await Promise.all([ctx.publisher.goto(started.blank.url), ctx.subscriber.goto(started.blank.url)]);
    if (!started.janus) {
      await up(ctx);
      started.janus = true;
    }
    const secret = fs.readFileSync(path.join(dir, 'admin_secret'), 'utf8').trim();
    // Seeds: the publisher's relay gets seed, the subscriber's seed + 1 (independent losses).
    started.relays.push(await sideRelay(ctx, 'publisher', ctx.relayIp, ctx.linkArgs.publisher, ctx.seed, dir));
    started.relays.push(await sideRelay(ctx, 'subscriber', subIp, ctx.linkArgs.subscriber, ctx.seed + 1, dir));

    const ws = `ws://${JANUS_IP}:8188`;
    const pub = await ctx.publisher.evaluate(janusPage, { role: 'publisher', ws, room: ROOM });
    ctx.log(`janus: publisher joined as feed ${pub.feed}; waiting for its media at Janus`);
    await ctx.publisher.waitForFunction(() => window.__janus.mediaUp, null, { timeout: 20000, polling: 200 });
    // Time to first frame counts from the subscriber's start, as for the other configurations.
    const t0 = Date.now();
    const sub = await ctx.subscriber.evaluate(janusPage, {
      role: 'subscriber', ws, room: ROOM, feed: pub.feed, rewrite: [ctx.relayIp, subIp],
    });
    ctx.log('janus: subscriber started');
    return {
      stop,
      t0,
      relays: started.relays.map((r) => r.info),
      /** The subscriber's video substream as Janus reports it (Admin API handle_info). */
      async serverSample() {
        const info = await adminHandleInfo(secret, sub.session, sub.handle);
        const sim = findSimulcast(info);
        return sim && Number.isInteger(sim.substream) && sim.substream >= 0 ? { layer: RIDS[sim.substream] ?? String(sim.substream) } : {};
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * One kham-relay over the whole Janus port range for one side; every client of it (the page's
 * eth0 socket and its veth socket) gets that side's link.
 */
function sideRelay(ctx, side, ip, linkArgs, seed, dir) {
  return startRelay({
    relayBin: ctx.relayBin, workDir: ctx.workDir, dir, name: side, seed, log: ctx.log,
    listen: `${ip}:${PORTS}`, upstream: `${JANUS_IP}:${PORTS}`, clients: [], fallback: specEntry(linkArgs),
  });
}

async function adminHandleInfo(secret, session, handle) {
  const res = await fetch(`http://${JANUS_IP}:7088/admin/${session}/${handle}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ janus: 'handle_info', transaction: 'sample', admin_secret: secret }),
    signal: AbortSignal.timeout(2000),
  });
  return (await res.json()).info;
}

/** The first object with a numeric `substream` under `plugin_specific` (its shape varies). */
function findSimulcast(info) {
  const stack = [info?.plugin_specific];
  while (stack.length) {
    const o = stack.pop();
    if (!o || typeof o !== 'object') continue;
    if (typeof o.substream === 'number') return o;
    stack.push(...Object.values(o));
  }
  return null;
}

/**
 * Runs inside a page (serialized by page.evaluate: self-contained). Janus JSON API over
 * WebSocket; non-trickle (Janus includes its candidates in its SDP, ours go in ours).
 * Leaves window.__janus = { pc, session, handle, events, mediaUp, close() }.
 */
async function janusPage({ role, ws: url, room, feed, rewrite }) {
  const ws = new WebSocket(url, 'janus-protocol');
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error(`websocket ${url} failed`)); });
  const waiting = new Map();
  const state = { events: [], mediaUp: false, substream: null };
  window.__janus = state;
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    const w = waiting.get(msg.transaction);
    if (msg.janus === 'media' && msg.receiving) state.mediaUp = true;
    const data = msg.plugindata?.data;
    if (data && typeof data.substream === 'number') state.substream = data.substream;
    if (w && msg.janus !== 'ack') { waiting.delete(msg.transaction); w(msg); } else if (!w) state.events.push(msg);
  };
  let n = 0;
  const send = (body) => new Promise((resolve, reject) => {
    const transaction = `${role}-${++n}`;
    waiting.set(transaction, (msg) => (msg.janus === 'error' || msg.plugindata?.data?.error
      ? reject(new Error(`janus: ${JSON.stringify(msg.error ?? msg.plugindata.data.error)}`)) : resolve(msg)));
    ws.send(JSON.stringify({ ...body, transaction, session_id: state.session, handle_id: state.handle }));
  });
  state.session = (await send({ janus: 'create' })).data.id;
  state.handle = (await send({ janus: 'attach', plugin: 'janus.plugin.videoroom' })).data.id;
  // Janus drops sessions silent for 60 s (session_timeout).
  const keepalive = setInterval(() => ws.readyState === 1 && ws.send(JSON.stringify({
    janus: 'keepalive', transaction: 'keepalive', session_id: state.session,
  })), 20000); // answered by an ack only: not through send()
  const pc = new RTCPeerConnection();
  state.pc = pc;
  state.close = () => { clearInterval(keepalive); pc.close(); ws.close(); };
  state.send = send; // for smoke.mjs --remb (a publisher `configure` with a REMB cap)

  // Our candidates on the Janus veth (10.77.0.x) would let Janus reach us directly.
  const ours = (sdp) => sdp.split('\r\n').filter((l) => !/^a=candidate:.* 10\.77\.0\.\d+ /.test(l)).join('\r\n');
  const gathered = () => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 3000);
  });

  if (role === 'publisher') {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true, video: { width: 1280, height: 720, frameRate: 30 },
    });
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
    pc.addTransceiver(stream.getVideoTracks()[0], {
      direction: 'sendonly', streams: [stream],
      sendEncodings: [
        { rid: 'q', scaleResolutionDownBy: 4 },
        { rid: 'h', scaleResolutionDownBy: 2 },
        { rid: 'f', scaleResolutionDownBy: 1 },
      ],
    });
    const joined = await send({ janus: 'message', body: { request: 'join', ptype: 'publisher', room, display: 'publisher' } });
    state.feed = joined.plugindata.data.id;
    await pc.setLocalDescription(await pc.createOffer());
    await gathered();
    // rid_order: our encodings go from the lowest (q) to the highest (f); Janus assumes the
    // opposite ("hml") unless told.
    const jsep = { type: 'offer', sdp: ours(pc.localDescription.sdp), trickle: false, rid_order: 'lmh' };
    const res = await send({ janus: 'message', body: { request: 'publish', audio: true, video: true }, jsep });
    await pc.setRemoteDescription(res.jsep);
    return { feed: state.feed, session: state.session, handle: state.handle };
  }

  // Subscriber: Janus offers, we answer.
  const video = document.createElement('video');
  video.autoplay = true; video.muted = true; video.playsInline = true;
  document.body.appendChild(video);
  // Audio plays through an element too, as in a real call (and as the other configurations).
  const audio = document.createElement('audio');
  audio.autoplay = true;
  document.body.appendChild(audio);
  pc.ontrack = (e) => {
    (e.track.kind === 'video' ? video : audio).srcObject = new MediaStream([e.track]);
  };
  const res = await send({ janus: 'message', body: { request: 'join', ptype: 'subscriber', room, streams: [{ feed }] } });
  let sdp = res.jsep.sdp;
  if (rewrite) {
    // Janus announces the publisher's relay; this page's traffic goes to its own relay.
    const [from, to] = rewrite;
    sdp = sdp.split('\r\n').map((l) => (/^(a=candidate:|c=)/.test(l) ? l.split(` ${from} `).join(` ${to} `).replace(`IN IP4 ${from}`, `IN IP4 ${to}`) : l)).join('\r\n');
  }
  await pc.setRemoteDescription({ type: 'offer', sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered();
  await send({ janus: 'message', body: { request: 'start', room }, jsep: { type: 'answer', sdp: ours(pc.localDescription.sdp), trickle: false } });
  return { session: state.session, handle: state.handle };
}
