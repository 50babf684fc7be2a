// Helpers of the thin-link browser tests and benches (images and vitals tests, image-thin.mjs,
// vitals-audio.mjs, vitals-cost.mjs): a page joined on
// a link shaped by Chromium's network emulation, and an incompressible picture.

import crypto from 'node:crypto';
import { newPage } from './browser.mjs';

/** Opens `kham`'s join link for `who` in `room` (with `query`), shapes it when `link` is given
 * ({downKbps, upKbps, latencyMs}), joins and waits for the call. */
export async function joinShaped(browser, kham, room, name, who, link = null, query = '') {
  const page = await newPage(browser, { name });
  await page.goto((await kham.joinLink({ room, ...who })) + query);
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  if (link) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: link.latencyMs, downloadThroughput: (link.downKbps * 1000) / 8,
      uploadThroughput: (link.upKbps * 1000) / 8, packetLoss: 0, packetQueueLength: 0, packetReordering: false,
    });
  }
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])', { timeout: 30_000 });
  return page;
}

/** Audio samples `page` played from participant `id` so far, and how many were concealed. */
export function audioFrom(page, id) {
  return page.evaluate(async (id) => {
    const c = /** @type {any} */ (window).__kham;
    let n = { samples: 0, concealed: 0 };
    (await c.pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && c.participantForMid(s.mid) === id) {
        n = { samples: s.totalSamplesReceived, concealed: s.concealedSamples };
      }
    });
    return n;
  }, id);
}

/** A 24-bit BMP of noise (incompressible), `w` x `h`. */
export function bmp(w, h) {
  const row = Math.ceil((w * 3) / 4) * 4;
  const b = Buffer.alloc(54 + row * h);
  b.write('BM', 0);
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  crypto.randomFillSync(b, 54);
  return b;
}
