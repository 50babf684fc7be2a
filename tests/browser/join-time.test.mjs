// Time to first remote frame, measured the way users meet it: two separate Chromium processes
// (one per device), the second joining a running call. Prints the figure; asserts only that
// video arrives both ways (timing targets belong to benchmarks, not tests).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, newPage } from './browser.mjs';
import { startKham } from './server.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser[]} */
const browsers = [];

before(async () => {
  kham = await startKham();
  browsers.push(await launchChromium(), await launchChromium());
});

after(async () => {
  for (const b of browsers) await b.close();
  await kham?.stop();
});

/** Resolves with the ms from `t0` until `page` has decoded a remote frame. */
async function firstFrame(page, t0) {
  await page.waitForFunction(
    () => [...document.querySelectorAll('[data-testid="remote-video"]')]
      .some((v) => /** @type {HTMLVideoElement} */ (v).getVideoPlaybackQuality().totalVideoFrames > 0),
    null,
    { timeout: 20_000, polling: 20 },
  );
  return Date.now() - t0;
}

test('time to first remote frame between two browsers on loopback', async () => {
  const room = `join-${process.pid}`;
  const a = await newPage(browsers[0], { name: 'station' });
  await a.goto(await kham.joinLink({ room, identity: 'tyt', name: 'Trạm y tế', role: 'station' }));
  await a.click('[data-testid="join"]:not([disabled])');
  await a.waitForSelector('[data-testid="call"]:not([hidden])');
  const b = await newPage(browsers[1], { name: 'doctor' });
  await b.goto(await kham.joinLink({ room, identity: 'bs', name: 'Bác sĩ', role: 'doctor' }));
  await b.waitForSelector('[data-testid="join"]:not([disabled])');
  const t0 = Date.now();
  await b.click('[data-testid="join"]');
  const [joiner, present] = await Promise.all([firstFrame(b, t0), firstFrame(a, t0)]);
  console.log(`time to first remote frame from the join click: joiner ${joiner} ms, already present ${present} ms`);
  assert.ok(joiner > 0 && present > 0);
});
