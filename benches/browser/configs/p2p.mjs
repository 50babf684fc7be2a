// p2p: a direct browser-to-browser call, signalled by the driver, no server in the media path.
// The publisher sends one 720p encoding plus Opus (what a 1:1 browser call does; libwebrtc
// adapts its own encoder, degradationPreference left at its default).
//
// Both directions cross a kham-relay: the subscriber is given one remote candidate, the relay's
// address (relay upstream = the publisher's host candidate), and the publisher is given no
// candidate at all: it learns the subscriber as peer-reflexive from the checks the relay
// forwards (sent from the relay's own address, `upstreamBind`), so its answers and media go back
// through the relay too. The relay's link is the publisher's uplink followed by the subscriber's
// downlink (relay.mjs composeDirect), for every client: the subscriber's page reaches the relay
// from one address per local interface (eth0, and Janus's veth when Janus runs), and each of
// those paths gets the same link.
//
// Time origin: as for kham, t0 is the subscriber starting to connect once the publisher is ready
// (camera on, peer connection made and its candidates gathered, so the relay can be started in
// front of it). What follows t0 is the whole call setup: the subscriber's peer connection, the
// publisher's offer (made again at t0), the answer, ICE, DTLS, media.
import { composeDirect, freeUdpPort, startRelay } from '../relay.mjs';
import { serveBlank } from '../blank.mjs';

/** The SDP without its candidate lines. @param {string} sdp */
const withoutCandidates = (sdp) => sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n');

/** @param {any} ctx */
export async function start(ctx) {
  const blank = await serveBlank();
  /** @type {Awaited<ReturnType<typeof startRelay>>|null} */
  let relay = null;
  try {
    await Promise.all([ctx.publisher.goto(blank.url), ctx.subscriber.goto(blank.url)]);
    // The publisher, ready before t0: camera, peer connection, gathered candidates.
    const gathered = await ctx.publisher.evaluate(async () => {
      const w = /** @type {any} */ (window);
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 1280 }, height: { ideal: 720 } },
      });
      const pc = new RTCPeerConnection();
      w.__pc = pc;
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve(undefined);
        pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(undefined); });
        setTimeout(resolve, 5000);
      });
      return /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
    });
    // The publisher's IPv4 UDP host candidate: `a=candidate:F 1 udp PRIO IP PORT typ host`.
    const host = gathered.split('\r\n')
      .map((l) => /^a=candidate:\S+ 1 udp \d+ (\d+\.\d+\.\d+\.\d+) (\d+) typ host/.exec(l))
      .find(Boolean);
    if (!host) throw new Error(`p2p: the publisher gathered no IPv4 UDP host candidate:\n${gathered}`);
    const relayPort = await freeUdpPort(ctx.relayIp);
    const link = composeDirect(ctx.linkArgs.publisher, ctx.linkArgs.subscriber);
    relay = await startRelay({
      relayBin: ctx.relayBin, workDir: ctx.workDir, name: ctx.name, seed: ctx.seed, log: ctx.log,
      listen: `${ctx.relayIp}:${relayPort}`, upstream: `${host[1]}:${host[2]}`, upstreamBind: ctx.relayIp,
      clients: [link], fallback: link,
    });

    // t0: the subscriber starts connecting. Each page.evaluate below stands for one signalling
    // message (kham's signalling is not emulated either).
    const t0 = Date.now();
    await ctx.subscriber.evaluate(() => {
      const w = /** @type {any} */ (window);
      const pc = new RTCPeerConnection();
      w.__pc = pc;
      const video = document.createElement('video');
      video.autoplay = true;
      video.muted = true;
      video.playsInline = true;
      const audio = document.createElement('audio');
      audio.autoplay = true;
      document.body.append(video, audio);
      pc.addEventListener('track', (ev) => {
        const el = ev.track.kind === 'video' ? video : audio;
        el.srcObject = ev.streams[0] || new MediaStream([ev.track]);
        el.play().catch(() => {});
      });
    });
    // Same ICE credentials and candidates as the gathered offer (no ICE restart).
    const offer = await ctx.publisher.evaluate(async () => {
      const pc = /** @type {any} */ (window).__pc;
      await pc.setLocalDescription(await pc.createOffer());
      return pc.localDescription.sdp;
    });
    const answer = await ctx.subscriber.evaluate(async ({ offer, candidate }) => {
      const pc = /** @type {any} */ (window).__pc;
      await pc.setRemoteDescription({ type: 'offer', sdp: offer });
      await pc.setLocalDescription(await pc.createAnswer());
      await pc.addIceCandidate({ candidate, sdpMid: pc.getTransceivers()[0].mid, sdpMLineIndex: 0 });
      return /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
    }, { offer: withoutCandidates(offer), candidate: `candidate:1 1 udp 2122260223 ${ctx.relayIp} ${relayPort} typ host` });
    await ctx.publisher.evaluate(async (sdp) => {
      await /** @type {any} */ (window).__pc.setRemoteDescription({ type: 'answer', sdp });
    }, withoutCandidates(answer));

    return {
      t0,
      relays: [relay.info],
      async stop() {
        await relay?.stop();
        await blank.close();
      },
    };
  } catch (err) {
    await relay?.stop();
    await blank.close();
    throw err;
  }
}
