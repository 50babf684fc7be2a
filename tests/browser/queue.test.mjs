// The on-demand specialist queue in real Chromium against a real kham server: two commune
// stations request cardiology (one urgent), two cardiologists go on duty; the urgent request is
// taken first; both consults run (remote video plays on all four pages, which moved from the
// queue and duty pages into the ordinary call without a new link); the dashboard shows the queue
// shrink to zero. Phone-sized station pages.
//
//   node --test queue.test.mjs   (KHAM_BIN or a built target/*/kham)

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, newPage, screenshot, takeCspViolations } from './browser.mjs';
import { startKham } from './server.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  kham = await startKham();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await kham?.stop();
});

afterEach(() => {
  assert.deepEqual(takeCspViolations(), [], 'Content-Security-Policy violations');
});

const visible = (testid) => `[data-testid="${testid}"]:not([hidden])`;
const TAG = `${process.pid}-${Date.now().toString(36)}`;

/** Frames decoded by the page's remote videos grow over `ms`. @param {import('playwright-core').Page} page */
async function remoteVideoPlays(page, ms = 1500) {
  await page.waitForSelector('[data-testid="remote-video"]', { timeout: 20_000 });
  const frames = () => page.evaluate(() => [...document.querySelectorAll('[data-testid="remote-video"]')]
    .map((v) => /** @type {HTMLVideoElement} */ (v).getVideoPlaybackQuality().totalVideoFrames)
    .reduce((a, b) => a + b, 0));
  const end = Date.now() + 20_000;
  const first = await frames();
  for (;;) {
    await page.waitForTimeout(ms);
    if ((await frames()) > first) return;
    if (Date.now() > end) throw new Error('remote video does not play');
  }
}

/** @param {import('playwright-core').Page} dash */
const queueTotal = (dash) => dash.getAttribute('[data-testid="queue-total"]', 'data-count');

test('two stations, two cardiologists: urgent first, both consults run, the queue empties', async () => {
  const t0 = Date.now();
  const dash = await newPage(browser, { name: 'dashboard', width: 1200, height: 900 });
  await dash.goto(`${kham.baseUrl}/dashboard`);
  await dash.fill('[data-testid="token-input"]', await kham.adminToken());
  await dash.click('[data-testid="login-submit"]');
  await dash.waitForSelector(visible('dashboard'));
  await dash.waitForFunction(() => document.querySelector('[data-testid="queue-total"]')?.getAttribute('data-count') === '0');

  // Two stations on phone screens ask for cardiology: A routine, then B urgent.
  /** @type {Record<string, import('playwright-core').Page>} */
  const st = {};
  for (const [key, name] of [['a', 'Trạm y tế xã An Phú'], ['b', 'Trạm y tế xã Bình Minh']]) {
    const page = await newPage(browser, { name: `station-${key}`, width: 390, height: 800 });
    await page.goto(await kham.queueLink({ identity: `st-${key}-${TAG}`, name }));
    await page.waitForSelector(visible('queue-page'));
    assert.doesNotMatch(page.url(), /token=/, 'the token leaves the address bar');
    assert.equal(await page.textContent('#queue-title'), 'Yêu cầu hội chẩn', 'Vietnamese by default');
    await page.waitForSelector('[data-testid="queue-request"]:not([disabled])');
    await page.selectOption('[data-testid="queue-specialty"]', 'cardiology');
    st[key] = page;
  }
  // The page fits a phone: nothing wider than the screen.
  assert.ok(await st.a.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scroll at 390 px');
  await st.a.fill('[data-testid="queue-note"]', 'đau ngực 2 giờ');
  await st.a.click('[data-testid="queue-request"]');
  await st.a.waitForSelector(visible('queue-status'));
  await st.a.waitForFunction(() => document.querySelector('[data-testid="queue-position"]')?.textContent === '1');
  // Station B works in English.
  await st.b.click('[data-testid="lang-toggle"]');
  assert.equal(await st.b.textContent('#queue-title'), 'Request a consult');
  assert.equal(await st.b.textContent('[data-testid="queue-request"]'), 'Request a consult');
  await st.b.check('[data-testid="queue-urgent"]');
  await st.b.click('[data-testid="queue-request"]');
  await st.b.waitForFunction(() => document.querySelector('[data-testid="queue-position"]')?.textContent === '1');
  assert.match(await st.b.textContent('[data-testid="queue-status"]'), /Waiting for a Cardiology specialist/);
  await screenshot(st.b, 'queue-station-waiting');
  // The urgent request goes ahead of the older routine one.
  await st.a.waitForFunction(() => document.querySelector('[data-testid="queue-position"]')?.textContent === '2');
  await dash.waitForFunction(() => document.querySelector('[data-testid="queue-total"]')?.getAttribute('data-count') === '2');
  assert.equal(await dash.textContent('tr[data-specialty="cardiology"] [data-testid="queue-length"]'), '2');

  // Two cardiologists go on duty and see the queue live, urgent first.
  /** @type {Record<string, import('playwright-core').Page>} */
  const dr = {};
  // Doctor 2 is on a phone.
  for (const [key, name, width, height] of [['1', 'BS. Trần Văn Tâm', 1024, 700], ['2', 'BS. Lê Thị Hoa', 390, 800]]) {
    const page = await newPage(browser, { name: `doctor-${key}`, width: Number(width), height: Number(height) });
    await page.goto(await kham.queueLink({ identity: `dr-${key}-${TAG}`, name, specialties: ['cardiology'] }));
    await page.waitForSelector(visible('duty-page'));
    await page.waitForSelector('[data-testid="duty-available"]:not([disabled])');
    await page.check('[data-testid="duty-available"]');
    await page.waitForSelector('[data-testid="queue-take"]:not([disabled])');
    dr[key] = page;
  }
  assert.ok(await dr['2'].evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'duty page: no horizontal scroll at 390 px');
  const entries = await dr['1'].$$eval('[data-testid="queue-entry"]', (els) => els.map((e) => e.getAttribute('data-urgent')));
  assert.deepEqual(entries, ['true', 'false'], 'urgent first');
  assert.match(await dr['1'].textContent('[data-testid="duty-list"]'), /đau ngực 2 giờ/, 'the note reaches the doctor');
  await dash.waitForFunction(() => document.querySelector('tr[data-specialty="cardiology"] [data-testid="queue-doctors"]')?.textContent === '2');

  await screenshot(dr['1'], 'queue-duty');
  // Doctor 1 takes the next request: the urgent one, from station B.
  await dr['1'].click('[data-testid="queue-take"]');
  await remoteVideoPlays(dr['1']);
  await remoteVideoPlays(st.b);
  assert.match(await dr['1'].textContent('[data-testid="grid"]'), /Bình Minh/, 'doctor 1 is with station B');
  await st.a.waitForFunction(() => document.querySelector('[data-testid="queue-position"]')?.textContent === '1');
  await dash.waitForFunction(() => document.querySelector('[data-testid="queue-total"]')?.getAttribute('data-count') === '1');

  // Doctor 2 takes the other one.
  await dr['2'].waitForFunction(() => document.querySelectorAll('[data-testid="queue-entry"]').length === 1);
  await dr['2'].click('[data-testid="queue-take"]');
  await remoteVideoPlays(dr['2']);
  await remoteVideoPlays(st.a);
  assert.match(await dr['2'].textContent('[data-testid="grid"]'), /An Phú/, 'doctor 2 is with station A');
  // Both consults still run side by side.
  await remoteVideoPlays(dr['1']);
  await remoteVideoPlays(st.b);

  // The queue is empty; two requests were served in the last hour.
  await dash.waitForFunction(() => document.querySelector('[data-testid="queue-total"]')?.getAttribute('data-count') === '0');
  assert.equal(await queueTotal(dash), '0');
  await dash.waitForFunction(() => /\b2\b/.test(document.querySelector('[data-testid="queue-served"]')?.textContent || ''));
  const metrics = await (await fetch(`${kham.baseUrl}/metrics`, { headers: { Authorization: `Bearer ${await kham.adminToken()}` } })).text();
  assert.match(metrics, /kham_queue_requests_total\{outcome="taken"\} 2/);
  assert.match(metrics, /kham_queue_length\{specialty="cardiology"\} 0/);
  assert.match(metrics, /kham_queue_wait_seconds_count 2/);
  await screenshot(dash, 'queue-dashboard');
  await screenshot(st.a, 'queue-station-call');
  console.log(`queue browser test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});
