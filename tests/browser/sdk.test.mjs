// SDK media negotiation in real Chromium without the kham server: the page replaces WebSocket
// with an in-page fake server whose "SFU" is a second RTCPeerConnection. It answers the SDK's
// publish offer, then renegotiates with server offers that add and stop receive m-lines, the
// way PROTOCOL.md describes, and checks the SDK's mid -> participant mapping and its events.
//
//   node --test sdk.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMockServer } from './mock-server.mjs';
import { launchChromium, newPage } from './browser.mjs';

/** @type {Awaited<ReturnType<typeof startMockServer>>} */
let mock;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  mock = await startMockServer(); // only serves /sdk/kham.js here
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await mock?.close();
});

test('SDK publishes simulcast, maps server-offered tracks to participants, drops stopped ones', async () => {
  const page = await newPage(browser, { name: 'sdk' });
  await page.goto(`${mock.url}/healthz`);
  const result = await page.evaluate(async () => {
    const log = [];
    const wait = (ms) => new Promise((r) => setTimeout(r, ms));
    const until = async (cond, what, ms = 10_000) => {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out: ${what}; log=${JSON.stringify(log)}`);
        await wait(20);
      }
    };

    // ---- the fake server: signaling over a fake WebSocket, media from a second peer connection
    const sfu = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    /** @type {any} */
    let socket = null;
    const toClient = (msg) => socket.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(msg) }));
    const gathered = () => new Promise((resolve) => {
      if (sfu.iceGatheringState === 'complete') return resolve(undefined);
      sfu.addEventListener('icegatheringstatechange', () => sfu.iceGatheringState === 'complete' && resolve(undefined));
    });
    const clientMsgs = [];
    class FakeSocket extends EventTarget {
      static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
      constructor(url) {
        super();
        this.url = url;
        this.readyState = 0;
        socket = this;
        setTimeout(() => {
          this.readyState = 1;
          this.dispatchEvent(new Event('open'));
          toClient({
            type: 'welcome', protocol: 1, room: 'r', status: 'admitted',
            me: { id: 'p-me', name: 'Me', role: 'doctor', audio_muted: false, video_muted: false },
            participants: [{ id: 'p-a', name: 'A', role: 'patient', audio_muted: false, video_muted: false }],
          });
        });
      }
      async send(text) {
        const msg = JSON.parse(text);
        clientMsgs.push(msg);
        if (msg.type === 'offer') {
          // Before the answer: a Chrome answerer takes simulcast down to one layer.
          // @ts-ignore
          window.__encodingsAtOffer = window.__kham_under_test.pc.getTransceivers()[1].sender.getParameters().encodings.map((e) => e.rid);
          await sfu.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
          await sfu.setLocalDescription(await sfu.createAnswer());
          await gathered();
          toClient({ type: 'answer', sdp: sfu.localDescription.sdp });
        } else if (msg.type === 'answer') {
          await sfu.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        }
      }
      close(code = 1000) {
        this.readyState = 3;
        this.dispatchEvent(new CloseEvent('close', { code }));
      }
    }
    // @ts-ignore
    window.WebSocket = FakeSocket;

    // Synthetic remote media: a canvas animation and an oscillator per remote participant.
    const remoteMedia = () => {
      const canvas = Object.assign(document.createElement('canvas'), { width: 320, height: 180 });
      const g = canvas.getContext('2d');
      let n = 0;
      setInterval(() => { g.fillStyle = `hsl(${(n += 7) % 360} 80% 50%)`; g.fillRect(0, 0, 320, 180); }, 33);
      const video = canvas.captureStream(30).getVideoTracks()[0];
      const ac = new AudioContext();
      const osc = ac.createOscillator();
      const dest = ac.createMediaStreamDestination();
      osc.connect(dest);
      osc.start();
      return { video, audio: dest.stream.getAudioTracks()[0] };
    };
    /** Server offer: adds sendonly m-lines for `who` and sends the full mapping. */
    const tracksInfo = [];
    const serverOffer = async () => {
      await sfu.setLocalDescription(await sfu.createOffer());
      await gathered();
      toClient({ type: 'offer', sdp: sfu.localDescription.sdp, tracks: tracksInfo });
      await until(() => sfu.signalingState === 'stable', 'client answer');
    };
    const addRemote = async (who) => {
      const m = remoteMedia();
      const ta = sfu.addTransceiver(m.audio, { direction: 'sendonly' });
      const tv = sfu.addTransceiver(m.video, { direction: 'sendonly' });
      await sfu.setLocalDescription(await sfu.createOffer());
      await gathered();
      tracksInfo.push({ mid: ta.mid, participant: who, kind: 'audio', active: true });
      tracksInfo.push({ mid: tv.mid, participant: who, kind: 'video', active: true });
      toClient({ type: 'offer', sdp: sfu.localDescription.sdp, tracks: tracksInfo });
      await until(() => sfu.signalingState === 'stable', 'client answer');
      return [ta, tv];
    };

    // ---- the SDK under test
    const { KhamClient } = await import('/sdk/kham.js');
    const client = new KhamClient();
    // @ts-ignore
    window.__kham_under_test = client;
    for (const type of ['track', 'trackremoved', 'participantleft', 'closed']) {
      client.addEventListener(type, (ev) => {
        const d = ev.detail;
        log.push(type === 'track' || type === 'trackremoved'
          ? `${type}:${d.participantId}:${d.kind}:${d.mid}:${d.stream.getTracks().length}`
          : `${type}:${d.id || d.reason}`);
      });
    }
    const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
    client.publish(local);
    await client.connect({ room: 'r', token: 'x.y.z' });
    await until(() => client.pc && client.pc.signalingState === 'stable' && client.pc.remoteDescription, 'answer applied');
    const offer = clientMsgs.find((m) => m.type === 'offer').sdp;

    // A participant's tracks arrive through a server offer.
    const [aAudio, aVideo] = await addRemote('p-a');
    await until(() => log.filter((l) => l.startsWith('track:p-a')).length === 2, 'tracks of p-a');
    await until(() => client.pc.connectionState === 'connected', 'media connected');
    const streamA = client.streamOf('p-a');
    const el = document.createElement('video');
    el.muted = true;
    el.srcObject = streamA;
    document.body.append(el);
    await el.play();
    await until(() => el.getVideoPlaybackQuality().totalVideoFrames > 5, 'frames of p-a');

    // A second participant joins.
    toClient({ type: 'participant_joined', participant: { id: 'p-b', name: 'B', role: 'station', audio_muted: false, video_muted: false } });
    await addRemote('p-b');
    await until(() => log.filter((l) => l.startsWith('track:p-b')).length === 2, 'tracks of p-b');

    // p-a leaves: participant_left, then an offer that stops its m-lines.
    toClient({ type: 'participant_left', id: 'p-a', reason: 'left' });
    aAudio.stop();
    aVideo.stop();
    for (const t of tracksInfo) if (t.participant === 'p-a') t.active = false;
    await serverOffer();
    await wait(100);
    const state = {
      mapped: client.participantForMid(aVideo.mid),
      streamA: client.streamOf('p-a').getTracks().length,
      streamB: client.streamOf('p-b').getTracks().length,
      transceivers: client.pc.getTransceivers().map((t) => `${t.mid}:${t.currentDirection}`),
    };
    await client.leave();
    return { offer, // @ts-ignore
      encodings: window.__encodingsAtOffer, log, state, clientTypes: clientMsgs.map((m) => m.type) };
  });

  console.log(`sdk events: ${result.log.join(' ')}`);
  console.log(`transceivers: ${result.state.transceivers.join(' ')}`);
  assert.deepEqual(result.encodings, ['q', 'h', 'f']);
  assert.match(result.offer, /a=simulcast:send q;h;f/);
  assert.equal(result.clientTypes.filter((t) => t === 'offer').length, 1, 'the client offers once');
  assert.equal(result.clientTypes.filter((t) => t === 'answer').length, 3, 'one answer per server offer');
  // p-a's tracks came, and went (before the participantleft event) on participant_left.
  assert.deepEqual(result.log.filter((l) => l.includes('p-a')).map((l) => l.split(':').slice(0, 3).join(':')),
    ['track:p-a:audio', 'track:p-a:video', 'trackremoved:p-a:audio', 'trackremoved:p-a:video', 'participantleft:p-a']);
  assert.equal(result.state.streamA, 0);
  assert.equal(result.state.streamB, 2);
  assert.ok(result.log.includes('closed:left'));
  await page.context().close();
});
