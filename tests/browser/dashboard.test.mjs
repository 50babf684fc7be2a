// The operators' dashboard in real Chromium against a real kham server: sign-in with an admin
// token, a running room appearing live with its participants (a doctor in a real browser call
// with a fake camera, a station and a waiting patient as plain signaling clients), the room view
// with quality and sparklines, removing a participant, the language switch, and closing the
// room from the dashboard, after which it disappears.
//
//   node --test dashboard.test.mjs   (KHAM_BIN or a built target/*/kham)

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { launchChromium, newPage, screenshot, takeCspViolations } from './browser.mjs';
import { startKham } from './server.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {WebSocket[]} */
const sockets = [];

before(async () => {
  kham = await startKham();
  browser = await launchChromium();
});

after(async () => {
  for (const s of sockets) s.terminate();
  await browser?.close();
  await kham?.stop();
});

// The pages run under kham's Content-Security-Policy: anything it blocks fails the test.
afterEach(() => {
  assert.deepEqual(takeCspViolations(), [], 'Content-Security-Policy violations');
});

const visible = (testid) => `[data-testid="${testid}"]:not([hidden])`;
const ROOM = `dash-${process.pid}-${Date.now().toString(36)}`;

/**
 * A participant with signaling only (no media): joins and records what the server says.
 * @param {{identity: string, name: string, role: string}} who
 */
async function signalingOnly(who) {
  const link = new URL(await kham.joinLink({ room: ROOM, ...who }));
  const ws = new WebSocket(`${link.origin.replace('http', 'ws')}/ws?${link.searchParams}`);
  sockets.push(ws);
  /** @type {any[]} */
  const got = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString())));
  /** @type {Promise<number>} */
  const closed = new Promise((r) => ws.on('close', (code) => r(code)));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const welcome = await waitFor(() => got.find((m) => m.type === 'welcome'));
  return { ws, got, closed, id: welcome.me.id };
}

/** @template T @param {() => T} fn @returns {Promise<NonNullable<T>>} */
async function waitFor(fn, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms: ${fn}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('dashboard shows a running room live and closes it', async () => {
  const dash = await newPage(browser, { name: 'dashboard', width: 1400, height: 900 });
  dash.on('dialog', (d) => d.accept());
  await dash.goto(`${kham.baseUrl}/dashboard`);

  // Sign-in: a bad token is refused with a reason, the admin token opens the dashboard.
  await dash.waitForSelector(visible('login'));
  assert.equal(await dash.textContent('h1'), 'Bảng điều hành', 'Vietnamese by default');
  await dash.fill('[data-testid="token-input"]', 'not-a-token');
  await dash.click('[data-testid="login-submit"]');
  await dash.waitForSelector(visible('login-error'));
  assert.match(await dash.textContent('[data-testid="login-error"]'), /không hợp lệ/);
  await dash.fill('[data-testid="token-input"]', await kham.adminToken());
  await dash.click('[data-testid="login-submit"]');
  await dash.waitForSelector(visible('dashboard'));
  await dash.waitForSelector('[data-testid="live"].ok');
  await dash.waitForSelector(visible('rooms-empty'));
  assert.match(await dash.textContent('[data-testid="node-rooms"]'), /0/);

  // A consult starts: a doctor in a real browser call, a station, a patient in the lobby.
  const doctor = await newPage(browser, { name: 'doctor' });
  await doctor.goto(await kham.joinLink({ room: ROOM, identity: 'dr-dash', name: 'BS. Vũ Minh Châu', role: 'doctor' }));
  await doctor.waitForSelector('[data-testid="join"]:not([disabled])');
  await doctor.click('[data-testid="join"]');
  await doctor.waitForSelector(visible('call'));
  const station = await signalingOnly({ identity: 'st-dash', name: 'Trạm Y tế xã Bình An', role: 'station' });
  const patient = await signalingOnly({ identity: 'pt-dash', name: 'Ngô Thị Lan', role: 'patient' });

  // The room appears by itself (pushed, no reload), with its people by role and the lobby.
  const row = `[data-testid="room-row"][data-room="${ROOM}"]`;
  await dash.waitForSelector(row, { timeout: 10_000 });
  await dash.waitForFunction((sel) => {
    const r = document.querySelector(sel);
    return r && /Bác sĩ 1/.test(r.querySelector('[data-testid="room-people"]')?.textContent || '')
      && /Trạm y tế 1/.test(r.querySelector('[data-testid="room-people"]')?.textContent || '')
      && r.querySelector('[data-testid="room-lobby"]')?.textContent === '1';
  }, row, { timeout: 10_000 });
  assert.ok(await dash.$(`${row} [data-testid="quality"]`), 'a quality badge per room');
  await dash.waitForFunction(() => /1/.test(document.querySelector('[data-testid="node-rooms"] dd')?.textContent || ''));

  // The room view: names (admins only), the doctor's measured quality and sparklines.
  await dash.click(`${row} [data-testid="open-room"]`);
  await dash.waitForSelector(visible('room-detail'));
  await dash.waitForFunction(() => document.querySelectorAll('[data-testid="participant-row"]').length === 3);
  const names = await dash.$$eval('[data-testid="participant-name"]', (els) => els.map((e) => e.textContent));
  for (const n of ['BS. Vũ Minh Châu', 'Trạm Y tế xã Bình An', 'Ngô Thị Lan']) {
    assert.ok(names.some((x) => x?.includes(n)), `${n} listed: ${names}`);
  }
  const doctorRow = '[data-testid="participant-row"][data-status="admitted"]:has-text("BS. Vũ Minh Châu")';
  await dash.waitForFunction(() => {
    const r = [...document.querySelectorAll('[data-testid="participant-row"]')].find((e) => e.textContent?.includes('Vũ Minh Châu'));
    const q = r?.querySelector('[data-testid="quality"]')?.getAttribute('data-quality');
    const line = r?.querySelector('[data-testid="spark-bitrate"] polyline.in')?.getAttribute('points') || '';
    return q && q !== 'unknown' && line.split(' ').length >= 2;
  }, null, { timeout: 20_000, polling: 250 });
  assert.ok(await dash.$(`${doctorRow} [data-testid="spark-loss"] svg`), 'loss sparkline');
  // The doctor's camera shows up as load on the room and a rising bitrate line.
  await dash.waitForFunction((sel) => parseFloat(document.querySelector(`${sel} [data-testid="room-kbps-in"]`)?.textContent?.replace(/,/g, '') || '0') > 50, row, { timeout: 10_000 });
  await dash.waitForFunction(() => {
    const r = [...document.querySelectorAll('[data-testid="participant-row"]')].find((e) => e.textContent?.includes('Vũ Minh Châu'));
    const pts = (r?.querySelector('[data-testid="spark-bitrate"] polyline.in')?.getAttribute('points') || '').split(' ');
    return pts.some((p) => parseFloat(p.split(',')[1]) < 20);
  }, null, { timeout: 10_000 });
  await screenshot(dash, 'dashboard-room');

  // Remove the waiting patient from the dashboard.
  await dash.click(`[data-testid="participant-row"][data-participant-id="${patient.id}"] [data-testid="remove-participant"]`);
  assert.equal(await patient.closed, 4002, 'the patient is removed (close code 4002)');
  assert.ok(patient.got.some((m) => m.type === 'removed'), 'the patient was told');
  await dash.waitForFunction(() => document.querySelectorAll('[data-testid="participant-row"]').length === 2);

  // English.
  await dash.click('[data-testid="lang-toggle"]');
  await dash.waitForFunction(() => document.querySelector('#rooms-title')?.textContent?.includes('Open rooms'));
  assert.match(await dash.textContent('[data-testid="close-room"]'), /Close room/);

  // Close the room from the dashboard: the call ends for everyone and the row disappears.
  await dash.click('[data-testid="close-room"]');
  await doctor.waitForSelector(visible('call-ended'), { timeout: 10_000 });
  assert.equal(await station.closed, 4003, 'the station sees the consult ended');
  await dash.waitForSelector(row, { state: 'detached', timeout: 10_000 });
  await dash.waitForSelector(visible('room-gone'));
  await dash.waitForSelector(visible('rooms-empty'));
  await screenshot(dash, 'dashboard-closed');

  // The dashboard shows no media.
  assert.equal(await dash.$$eval('video, audio', (els) => els.length), 0);
});
