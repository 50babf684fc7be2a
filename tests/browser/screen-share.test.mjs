// Screen share with content priority (issue 16): real Chromium against a real `kham serve --dev`.
// A station publishes its camera (720p fake camera, three simulcast layers) and, through the
// page's "share screen" button, a screen share: `getDisplayMedia` is replaced by an init
// script with a 1280x720 canvas of fine detail (a film-like gradient, a ruler grid and small
// text, still as a PACS image is, with a readout in a corner that changes each frame so the encoder keeps sending). A doctor receives both over a
// constrained downlink (Chromium's WebRTC network emulation, as in weak-link.test.mjs).
//
// Asserted: the doctor's page shows the share in its large tile (`remote-share`), the station's
// share encoding is capped below the doctor's link (the server's `publish_layers` for a single
// encoding: the share follows its weakest viewer), the share's
// inbound-rtp frame height stays at the full 720 over the whole measured window while the
// camera, whose tile wants 720p, is received below it (it dropped layers: the allocator bought
// the share first). Every figure is printed.
//
// The share starts mid-call (5 s after the doctor first shows the camera); SHARE_AT_JOIN=1
// starts it as the doctor joins, when the estimator's first readings are low (2026-12-06: the
// first share frame 17-21 s after its tile before the share followed its weakest viewer, 7-18 s
// after; mid-call 0.01-0.27 s with or without).
//
// Two pages, not three: until 2026-12-06 an unshaped observer joined as a control (its camera
// printed, never asserted). Its decoding of a 720p camera and a 720p share starved the doctor's
// page on a loaded 2-core machine (CI: the share's first frame 22 s late, 6 fps; locally, with
// two busy loops beside the test, 6 of 12 runs failed with or without that session's
// allocator change), and Chromium's link emulation runs on the page's own timers, so a starved
// page is a different link.
//
// Env: KHAM_BIN, KHAM_CHROMIUM as in call.test.mjs.
//   node --test screen-share.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, newPage } from './browser.mjs';
import { startKham } from './server.mjs';

/** The doctor's downlink (the weak 3G figure): room for the share and a small camera. */
const LINK = { downKbps: Number(process.env.SHARE_LINK_KBPS || 300), upKbps: 5000, latencyMs: 40 };
/** How long the allocator is given to settle, then how long the figures are sampled. */
const SETTLE_MS = 20_000;
const MEASURE_MS = 10_000;
/** The call runs this long after the doctor first shows the camera before the share starts. */
const CALL_BEFORE_SHARE_MS = 5_000;
/** The share must be decoded on the doctor's page this long after its tile appeared. */
const FIRST_SHARE_MS = 40_000;
const SHARE_HEIGHT = 720;
/**
 * A tall page: below the share, the camera's tile is large enough to want its 720p layer, so a
 * lower camera on the weak page is the link's doing, not the tile's (at 800 px the tile asked
 * only for 180-360p and the unshaped page's camera did not climb above the weak one's).
 */
const PAGE_HEIGHT = Number(process.env.SHARE_PAGE_HEIGHT || 1800);

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;
const started = Date.now();

before(async () => {
  kham = await startKham();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await kham?.stop();
  console.log(`screen-share: total ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

const visible = (testid) => `[data-testid="${testid}"]:not([hidden])`;

/** Replaces getDisplayMedia with a detailed 1280x720 canvas (what a PACS viewer looks like). */
function fakeDisplayMedia() {
  const md = /** @type {any} */ (navigator.mediaDevices);
  md.getDisplayMedia = async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 1280;
    canvas.height = 720;
    const g = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    // A chest film: a soft radial gradient, a ruler grid and small labels.
    const film = g.createRadialGradient(640, 360, 40, 640, 360, 620);
    film.addColorStop(0, '#bbb');
    film.addColorStop(1, '#111');
    g.fillStyle = film;
    g.fillRect(0, 0, 1280, 720);
    g.strokeStyle = '#6cf';
    g.lineWidth = 1;
    for (let x = 0; x < 1280; x += 64) g.strokeRect(x + 0.5, 0.5, 0, 720);
    for (let y = 0; y < 720; y += 64) g.strokeRect(0.5, y + 0.5, 1280, 0);
    g.font = '12px monospace';
    g.fillStyle = '#fff';
    for (let y = 20; y < 720; y += 128) g.fillText(`ID 000123  CR THORAX PA  ${y} mm`, 12, y);
    let n = 0;
    setInterval(() => {
      // A measurement readout that changes each frame (the rest of the image is still, as a
      // PACS viewer's is): the encoder always has a little to send.
      g.fillStyle = '#000';
      g.fillRect(1000, 680, 280, 40);
      g.fillStyle = '#ff0';
      g.font = '14px monospace';
      g.fillText(`WL 400 WW 1500 #${n++}`, 1010, 705);
    }, 66);
    return canvas.captureStream(15);
  };
}

/**
 * @param {string} name
 * @param {{room: string, identity: string, name: string, role: string}} who
 * @param {typeof LINK} [link]
 */
async function join(name, who, link) {
  const page = await newPage(browser, { name, width: 1280, height: PAGE_HEIGHT });
  await page.addInitScript(fakeDisplayMedia);
  await page.goto(await kham.joinLink(who));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  if (link && link.downKbps > 0) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: link.latencyMs,
      downloadThroughput: (link.downKbps * 1000) / 8,
      uploadThroughput: (link.upKbps * 1000) / 8,
      packetLoss: 0,
      packetQueueLength: 0,
      packetReordering: false,
    });
  }
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__kham.addEventListener('videostate', (/** @type {any} */ ev) => { w.__lastVideoState = ev.detail.tracks; });
  });
  await page.click('[data-testid="join"]');
  await page.waitForSelector(visible('call'), { timeout: 30_000 });
  const id = await page.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  return { page, id };
}

/**
 * Frame heights of the share and of the camera received from `publisherId`, sampled every
 * 500 ms for `ms`.
 * @param {import('playwright-core').Page} page
 * @param {string} publisherId
 * @param {number} ms
 */
function sample(page, publisherId, ms) {
  return page.evaluate(async ({ publisherId, ms }) => {
    const c = /** @type {any} */ (window).__kham;
    const shareVideo = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-share"] video'));
    const shareTrack = shareVideo && shareVideo.srcObject ? /** @type {MediaStream} */ (shareVideo.srcObject).getVideoTracks()[0] : null;
    const receivers = c.pc.getReceivers().filter((/** @type {RTCRtpReceiver} */ r) => r.track.kind === 'video');
    const share = receivers.find((/** @type {RTCRtpReceiver} */ r) => r.track === shareTrack) || null;
    const camera = c.pc.getTransceivers().find((/** @type {RTCRtpTransceiver} */ t) =>
      t.mid && t.receiver.track.kind === 'video' && t.receiver !== share && c.participantForMid(t.mid) === publisherId);
    const inbound = async (/** @type {RTCRtpReceiver|null} */ r) => {
      let out = { height: 0, frames: 0, fps: 0, bytes: 0 };
      if (!r) return out;
      (await r.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp') {
          out = { height: s.frameHeight || 0, frames: s.framesDecoded || 0, fps: Math.round(s.framesPerSecond || 0), bytes: s.bytesReceived || 0 };
        }
      });
      return out;
    };
    /** @type {{share: any, camera: any}[]} */
    const samples = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
      samples.push({ share: await inbound(share), camera: await inbound(camera ? camera.receiver : null) });
      await new Promise((r) => setTimeout(r, 500));
    }
    return { found: { share: !!share, camera: !!camera }, samples };
  }, { publisherId, ms });
}

test('a screen share beside the camera on a constrained subscriber keeps its resolution while the camera drops layers', { timeout: 120_000 }, async () => {
  const room = `share-${process.pid}-${Date.now().toString(36)}`;
  const station = await join('station', { room, identity: 'tram-tan-phu', name: 'Trạm y tế xã Tân Phú', role: 'station' });
  const doctor = await join('doctor', { room, identity: 'dr-an', name: 'BS. Nguyễn Văn An', role: 'doctor' }, LINK);
  try {
    // The share starts mid-call, as in a consult: once the doctor shows the station's camera
    // and its estimate has had a few seconds (a share started as the doctor joins meets the
    // estimator's first readings, 130-150 kbit/s behind this 300 kbit/s link: printed by
    // SHARE_AT_JOIN=1, not asserted).
    if (!process.env.SHARE_AT_JOIN) {
      await doctor.page.waitForFunction((id) => {
        const v = /** @type {HTMLVideoElement|null} */ (document.querySelector(`[data-participant-id="${id}"] [data-testid="remote-video"]`));
        return !!v && v.videoHeight > 0;
      }, station.id, { timeout: 30_000, polling: 250 });
      await doctor.page.waitForTimeout(CALL_BEFORE_SHARE_MS);
    }
    await station.page.click('[data-testid="screen-share"]');
    await station.page.waitForSelector('[data-testid="screen-share"][aria-pressed="true"]');
    const sent = await station.page.evaluate(() => {
      const pc = /** @type {any} */ (window).__kham.pc;
      const s = pc.getSenders().find((/** @type {RTCRtpSender} */ x) => x.track && x.track.contentHint === 'detail');
      const p = s ? s.getParameters() : null;
      return p && { encodings: p.encodings.length, degradation: p.degradationPreference ?? null, scalability: p.encodings[0].scalabilityMode ?? null };
    });
    console.log('screen-share: station share sender', JSON.stringify(sent));
    assert.ok(sent, 'the station sends a share with contentHint detail');
    assert.equal(sent.encodings, 1, 'the share is one full-resolution encoding');

    await doctor.page.waitForSelector(`[data-testid="remote-share"][data-participant-id="${station.id}"]`, { timeout: 20_000 });
    // The allocator settles from the share's first decoded frame on the doctor's page (it is
    // normally there within a second or two of its tile; how long it took is printed, and more
    // than FIRST_SHARE_MS fails).
    const tileAt = Date.now();
    await doctor.page.waitForFunction(() => {
      const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-share"] video'));
      return !!v && v.videoHeight > 0 && (v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0) > 0;
    }, null, { timeout: FIRST_SHARE_MS, polling: 250 });
    console.log(`screen-share: the doctor's first share frame ${Date.now() - tileAt} ms after its tile appeared`);
    await doctor.page.waitForTimeout(SETTLE_MS);
    const { found, samples } = await sample(doctor.page, station.id, MEASURE_MS);
    const shareHeights = samples.map((s) => s.share.height);
    const cameraHeights = samples.map((s) => s.camera.height);
    const first = samples[0];
    const last = samples[samples.length - 1];
    const kbps = (/** @type {'share'|'camera'} */ k) => Math.round(((last[k].bytes - first[k].bytes) * 8) / MEASURE_MS);
    console.log('screen-share: station outbound', JSON.stringify(await station.page.evaluate(async () => {
      const out = [];
      (await /** @type {any} */ (window).__kham.pc.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') out.push([s.mid, s.rid, s.frameHeight, Math.round(s.framesPerSecond || 0), s.bytesSent, s.qualityLimitationReason, s.scalabilityMode]);
      });
      return out;
    })));
    console.log('screen-share: doctor video_state', JSON.stringify(await doctor.page.evaluate(() => /** @type {any} */ (window).__lastVideoState || null)));
    console.log(`screen-share: doctor link ${LINK.downKbps} kbit/s down, ${LINK.latencyMs} ms`);
    console.log(`screen-share: share heights ${JSON.stringify(shareHeights)}, ${kbps('share')} kbit/s, fps ${last.share.fps}, frames +${last.share.frames - first.share.frames}`);
    console.log(`screen-share: camera heights ${JSON.stringify(cameraHeights)}, ${kbps('camera')} kbit/s, fps ${last.camera.fps}, frames +${last.camera.frames - first.camera.frames}`);
    // The share is one encoding: the server caps it to its weakest viewer's link (the doctor's).
    const shareCap = await station.page.evaluate(() => {
      const pc = /** @type {any} */ (window).__kham.pc;
      const s = pc.getSenders().find((/** @type {RTCRtpSender} */ x) => x.track && x.track.contentHint === 'detail');
      return s ? s.getParameters().encodings[0].maxBitrate ?? null : null;
    });
    console.log(`screen-share: the station's share encoding maxBitrate ${shareCap}`);
    assert.ok(shareCap !== null && shareCap < LINK.downKbps * 1000, `the share is capped below the doctor's ${LINK.downKbps} kbit/s: ${shareCap}`);
    assert.ok(found.share && found.camera, `share and camera receivers found: ${JSON.stringify(found)}`);
    assert.ok(last.share.frames > first.share.frames, 'the share is decoded during the window');
    assert.ok(shareHeights.every((h) => h === SHARE_HEIGHT), `the share keeps ${SHARE_HEIGHT}p: ${shareHeights}`);
    // The camera dropped layers on the weak link: below its 720p top in every sample, though
    // its tile (PAGE_HEIGHT) wants 720p.
    assert.ok(cameraHeights.every((h) => h > 0 && h < SHARE_HEIGHT), `the camera is below its 720p: ${cameraHeights}`);

    // Stopping: the station's button again; the doctor's share tile goes (the server reports
    // the share `no_video` once its packets stop).
    const stopAt = Date.now();
    await station.page.click('[data-testid="screen-share"]');
    await station.page.waitForSelector('[data-testid="screen-share"][aria-pressed="false"]');
    await doctor.page.waitForSelector('[data-testid="remote-share"]', { state: 'hidden', timeout: 15_000 });
    console.log(`screen-share: share tile gone on the doctor's page ${Date.now() - stopAt} ms after stop`);
  } finally {
    await Promise.all([station, doctor].map((p) => p.page.context().close()));
  }
});
