// UI tests of the web client in real Chromium against the protocol mock (mock-server.mjs): no
// kham server and no media path needed. Covers the lobby flow, the published offer's shape,
// mute indicators, leave/deny/remove/end screens, connection failure and the language switch.
//
//   node --test ui.test.mjs      (screenshots in $KHAM_SCREENSHOTS or $TMPDIR/kham-screenshots)

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startMockServer } from './mock-server.mjs';
import { launchChromium, newPage, screenshot, takeCspViolations } from './browser.mjs';

/** @type {Awaited<ReturnType<typeof startMockServer>>} */
let mock;
/** @type {import('playwright-core').Browser} */
let browser;
let roomSeq = 0;
const nextRoom = () => `ui-${process.pid}-${++roomSeq}`;

before(async () => {
  mock = await startMockServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await mock?.close();
});

// The pages run under kham's Content-Security-Policy: anything it blocks fails the test.
afterEach(() => {
  assert.deepEqual(takeCspViolations(), [], 'Content-Security-Policy violations');
});

const visible = (testid) => `[data-testid="${testid}"]:not([hidden])`;

/** Opens a join link and clicks join once the device preview is ready. */
async function join(link, opts) {
  const page = await newPage(browser, opts);
  await page.goto(link);
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  assert.doesNotMatch(page.url(), /token=/, 'the token is removed from the address bar');
  await page.click('[data-testid="join"]');
  return page;
}

async function endedReason(page) {
  await page.waitForSelector(visible('call-ended'));
  return page.getAttribute('[data-testid="call-ended"]', 'data-reason');
}

test('patient waits in the lobby, doctor admits, both see each other', async () => {
  const room = nextRoom();
  const doctor = await join(mock.joinLink(room, 'BS. Nguyễn Văn An', 'doctor'), { name: 'doctor' });
  await doctor.waitForSelector(visible('call'));
  assert.equal(await doctor.locator('[data-testid="lobby-panel"]').isHidden(), true, 'empty lobby is hidden');

  const patient = await join(mock.joinLink(room, 'Trần Thị Bình', 'patient'), { name: 'patient', width: 390, height: 780 });
  await patient.waitForSelector(visible('lobby-waiting'));
  assert.match(await patient.textContent('[data-testid="lobby-waiting"]'), /Vui lòng chờ bác sĩ cho vào/);
  // A waiting patient must not have started media.
  const patientOffersBefore = mock.received.filter((r) => r.msg.type === 'offer').length;

  await doctor.waitForSelector('[data-testid="admit"]');
  assert.match(await doctor.textContent('[data-testid="lobby-entry"]'), /Trần Thị Bình/);
  await screenshot(doctor, 'ui-doctor-lobby');
  await doctor.click('[data-testid="admit"]');

  await patient.waitForSelector(visible('call'));
  await doctor.waitForSelector('[data-testid="lobby-panel"][hidden]', { state: 'attached' });
  for (const [page, other] of [[doctor, 'Trần Thị Bình'], [patient, 'BS. Nguyễn Văn An']]) {
    await page.waitForSelector('[data-testid="remote-video"]', { state: 'attached' });
    const tiles = await page.$$eval('[data-participant-id]', (els) => els.map((e) => e.textContent));
    assert.equal(tiles.length, 2);
    assert.ok(tiles.some((t) => t.includes(other)), `tile for ${other}`);
    const muted = await page.$eval('[data-testid="remote-video"]', (v) => /** @type {HTMLVideoElement} */ (v).muted);
    assert.equal(muted, false, 'remote media element must not be muted');
  }

  // After admission the patient publishes exactly one offer: sendonly audio + simulcast video.
  await waitFor(() => mock.received.filter((r) => r.msg.type === 'offer').length > patientOffersBefore);
  const offers = mock.received.filter((r) => r.msg.type === 'offer');
  assert.equal(offers.length, 2, 'one offer per admitted participant');
  for (const { msg } of offers) {
    assert.match(msg.sdp, /m=audio [\s\S]*a=sendonly/);
    assert.match(msg.sdp, /a=simulcast:send q;h;f/);
    for (const rid of ['q', 'h', 'f']) assert.match(msg.sdp, new RegExp(`a=rid:${rid} send`));
    assert.match(msg.sdp, /a=group:BUNDLE 0 1/);
  }

  // Mute shows on the other side.
  await patient.click('[data-testid="mute"]');
  await doctor.waitForSelector('[data-testid="tile"] [data-testid="audio-muted"]');
  assert.equal(await patient.getAttribute('[data-testid="mute"]', 'aria-pressed'), 'true');
  await patient.click('[data-testid="camera"]');
  await doctor.waitForSelector('[data-testid="tile"].video-off [data-testid="video-muted"]');
  const enabled = await patient.evaluate(() => {
    const s = /** @type {any} */ (window).__kham._localStream;
    return { audio: s.getAudioTracks()[0].enabled, video: s.getVideoTracks()[0].enabled };
  });
  assert.deepEqual(enabled, { audio: false, video: false });
  await screenshot(patient, 'ui-patient-call-phone');
  await screenshot(doctor, 'ui-doctor-call');

  // Leave: the doctor sees the tile go, the patient sees the "left" screen.
  await patient.click('[data-testid="leave"]');
  assert.equal(await endedReason(patient), 'left');
  await doctor.waitForFunction(() => document.querySelectorAll('[data-participant-id]').length === 1);
  await doctor.context().close();
  await patient.context().close();
});

test('a station joins directly without the lobby', async () => {
  const room = nextRoom();
  const doctor = await join(mock.joinLink(room, 'BS. Lê Minh', 'doctor'), { name: 'doctor' });
  await doctor.waitForSelector(visible('call'));
  const station = await join(mock.joinLink(room, 'Trạm y tế xã Tân Phú', 'station'), { name: 'station' });
  await station.waitForSelector(visible('call'));
  await doctor.waitForFunction(() => document.querySelectorAll('[data-testid="remote-video"]').length === 1);
  assert.equal(await station.locator('[data-testid="end-consult"]').count(), 0, 'no doctor controls for a station');
  assert.equal(await station.locator('[data-testid="remove"]').count(), 0);
  assert.equal(await doctor.locator('[data-testid="end-consult"]').count(), 1);
  await doctor.context().close();
  await station.context().close();
});

test('an observer joins without camera or microphone and only receives', async () => {
  const room = nextRoom();
  const doctor = await join(mock.joinLink(room, 'BS. Lê Minh', 'doctor'), { name: 'doctor' });
  await doctor.waitForSelector(visible('call'));
  const observer = await join(mock.joinLink(room, 'Sinh viên Y', 'observer'), { name: 'observer' });
  await observer.waitForSelector(visible('call'));
  const id = await observer.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await waitFor(() => mock.received.some((r) => r.from === id && r.msg.type === 'offer'));
  const { sdp } = mock.received.find((r) => r.from === id && r.msg.type === 'offer').msg;
  assert.match(sdp, /m=audio[\s\S]*a=recvonly/);
  assert.doesNotMatch(sdp, /a=sendonly|a=sendrecv|m=video/);
  assert.equal(await observer.locator('[data-testid="mute"]').count(), 0, 'no mic toggle for an observer');
  assert.equal(await observer.evaluate(() => /** @type {any} */ (window).__kham._localStream), null);
  for (const p of [doctor, observer]) await p.context().close();
});

test('denied patient sees the end screen and the link stops working', async () => {
  const room = nextRoom();
  const doctor = await join(mock.joinLink(room, 'BS. Phạm Hà', 'doctor'), { name: 'doctor' });
  await doctor.waitForSelector(visible('call'));
  const link = mock.joinLink(room, 'Võ Văn Cường', 'patient');
  const patient = await join(link, { name: 'patient' });
  await patient.waitForSelector(visible('lobby-waiting'));
  await doctor.click('[data-testid="deny"]');
  assert.equal(await endedReason(patient), 'denied');
  assert.match(await patient.textContent('#ended-title'), /Bác sĩ chưa thể tiếp bạn/);
  await doctor.waitForSelector('[data-testid="lobby-panel"][hidden]', { state: 'attached' });
  await screenshot(patient, 'ui-denied');

  const again = await join(link, { name: 'patient-again' });
  assert.equal(await endedReason(again), 'connect_failed');
  for (const p of [doctor, patient, again]) await p.context().close();
});

test('doctor removes a participant, then ends the consult for everyone', async () => {
  const room = nextRoom();
  const doctor = await join(mock.joinLink(room, 'BS. Đỗ Quang', 'doctor'), { name: 'doctor' });
  await doctor.waitForSelector(visible('call'));
  const s1 = await join(mock.joinLink(room, 'Trạm A', 'station'), { name: 's1' });
  const s2 = await join(mock.joinLink(room, 'Trạm B', 'station'), { name: 's2' });
  await doctor.waitForFunction(() => document.querySelectorAll('[data-testid="remote-video"]').length === 2);

  const s1Id = await s1.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await doctor.click(`[data-participant-id="${s1Id}"] [data-testid="remove"]`);
  await doctor.waitForSelector('[data-testid="confirm-dialog"][open]');
  await screenshot(doctor, 'ui-confirm-remove');
  await doctor.click('[data-testid="confirm-yes"]');
  assert.equal(await endedReason(s1), 'removed');
  await s2.waitForFunction((id) => !document.querySelector(`[data-participant-id="${id}"]`), s1Id);

  // Cancelling the confirmation keeps the consult going.
  await doctor.click('[data-testid="end-consult"]');
  await doctor.click('[data-testid="confirm-no"]');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await s2.locator(visible('call')).count(), 1);

  await doctor.click('[data-testid="end-consult"]');
  await doctor.click('[data-testid="confirm-yes"]');
  assert.equal(await endedReason(s2), 'ended');
  assert.equal(await endedReason(doctor), 'ended');
  await screenshot(s2, 'ui-ended');
  for (const p of [doctor, s1, s2]) await p.context().close();
});

test('a token for another room shows the connection-failed screen', async () => {
  const page = await join(mock.joinLink('room-b', 'Trần Thị Bình', 'patient', 'room-a'), { name: 'wrong-room' });
  assert.equal(await endedReason(page), 'connect_failed');
  assert.match(await page.textContent('[data-testid="call-ended"]'), /Không kết nối được/);
  assert.equal(await page.locator(visible('rejoin')).count(), 1);
  await screenshot(page, 'ui-connect-failed');
  await page.context().close();
});

test('a link without a token says so', async () => {
  const page = await newPage(browser, { name: 'bad-link' });
  await page.goto(`${mock.url}/join?room=x`);
  assert.equal(await endedReason(page), 'bad_link');
  await page.context().close();
});

test('language: Vietnamese by default, English on switch, remembered after reload', async () => {
  const page = await newPage(browser, { name: 'lang' });
  await page.goto(mock.joinLink(nextRoom(), 'Nguyễn Thị Dung', 'patient'));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  assert.equal(await page.getAttribute('html', 'lang'), 'vi');
  assert.equal((await page.textContent('[data-testid="join"]')).trim(), 'Vào phòng khám');

  await page.click('[data-testid="lang-toggle"]');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.equal((await page.textContent('[data-testid="join"]')).trim(), 'Join consultation');
  assert.match(await page.textContent('[data-testid="mute"]'), /Mute/);
  assert.match(await page.textContent('#preview-identity'), /joining as Nguyễn Thị Dung \(Patient\)/);

  // The address bar has lost the token; a reload finds it in this tab's sessionStorage.
  assert.doesNotMatch(page.url(), /token=/);
  assert.match(page.url(), /\/join\?room=/);
  await page.reload();
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  assert.doesNotMatch(page.url(), /token=/);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.click('[data-testid="join"]');
  await page.waitForSelector(visible('lobby-waiting'));
  assert.match(await page.textContent('[data-testid="lobby-waiting"]'), /Please wait, the doctor will let you in/);
  await screenshot(page, 'ui-waiting-en');

  await page.click('[data-testid="lang-toggle"]');
  assert.match(await page.textContent('[data-testid="lobby-waiting"]'), /Vui lòng chờ bác sĩ cho vào/);
  await page.context().close();
});

/** Polls a condition (in the test process) until true or times out. */
async function waitFor(cond, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
