// Chat (issue 16): a doctor writes to a patient waiting in the lobby, then three participants
// write to each other in the call; every page shows the same messages in the same order, with
// sender and time, an unread mark while the panel is closed, both languages; an oversized
// message and a flood get typed errors; and the server's log (kham's crates at debug level)
// never holds a text that was sent.
//
//   KHAM_BIN=target/debug/kham node --test chat.test.mjs

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, newPage, screenshot, takeCspViolations } from './browser.mjs';
import { startKham } from './server.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  // kham's own crates at debug: chat texts must not appear at any level.
  kham = await startKham({ extraEnv: { KHAM_LOG__LEVEL: 'info,kham=debug,kham_signal=debug,kham_server=debug,kham_sfu=debug' } });
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
const ROOM = `chat-${process.pid}-${Date.now().toString(36)}`;
/** Every text sent, to look for in the server's log at the end. */
const SENT = [];
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};

async function open(name, who) {
  const page = await newPage(browser, { name });
  await page.goto(await kham.joinLink({ room: ROOM, ...who }));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  pages[name] = page;
  return page;
}

/** The chat messages a page shows in the call's panel: seq, sender line, time, text. */
function shown(page, list = '#chat-list') {
  return page.$$eval(`${list} [data-testid="chat-message"]`, (els) => els.map((e) => ({
    seq: Number(e.getAttribute('data-seq')),
    sender: e.querySelector('[data-testid="chat-sender"]')?.textContent || '',
    time: e.querySelector('[data-testid="chat-time"]')?.textContent || '',
    text: e.querySelector('[data-testid="chat-text"]')?.textContent || '',
  })));
}

test('a doctor writes to a patient waiting in the lobby', async () => {
  const doctor = await open('doctor', { identity: 'dr-an', name: 'BS. Nguyễn Văn An', role: 'doctor' });
  const patient = await open('patient', { identity: 'bn-binh', name: 'Trần Thị Bình', role: 'patient' });
  await doctor.click('[data-testid="join"]');
  await doctor.waitForSelector(visible('call'));
  await patient.click('[data-testid="join"]');
  await patient.waitForSelector(visible('lobby-waiting'));
  assert.equal(await patient.isVisible('[data-testid="waiting-chat"]'), false, 'no messages yet');

  const text = 'Tôi sẽ gặp bạn sau 5 phút nữa (lobby-7Q2)';
  SENT.push(text);
  await doctor.fill('[data-testid="lobby-chat-input"]', text);
  await doctor.click('[data-testid="lobby-chat-send"]');
  await patient.waitForSelector(`${visible('waiting-chat')} [data-testid="chat-message"]`, { timeout: 5000 });
  const [m] = await shown(patient, '#waiting-chat-list');
  assert.equal(m.text, text);
  assert.match(m.sender, /BS\. Nguyễn Văn An \(Bác sĩ\)/, 'sender and role, in Vietnamese');
  assert.match(m.time, /^\d{2}:\d{2}$/, `a time is shown: ${m.time}`);
  // The doctor sees it too, addressed to the patient.
  await doctor.click('[data-testid="chat-toggle"]');
  await doctor.waitForSelector('#chat-list [data-testid="chat-message"]');
  const [echo] = await shown(doctor);
  assert.equal(echo.text, text);
  assert.match(echo.sender, /Bạn → Trần Thị Bình/);
  await screenshot(patient, 'chat-lobby-patient');
});

test('three participants: everyone sees every message once, in one order, with an unread mark', async () => {
  const { doctor, patient } = pages;
  await doctor.click('[data-testid="admit"]');
  await patient.waitForSelector(visible('call'));
  const station = await open('station', { identity: 'tyt-tp', name: 'Trạm y tế xã Tân Phú', role: 'station' });
  await station.click('[data-testid="join"]');
  await station.waitForSelector(visible('call'));
  await doctor.waitForFunction(() => /** @type {any} */ (window).__kham.participants.size === 2);

  // Three senders at once, three messages each, straight through the SDK (no UI delay), then one
  // more typed in the station's panel.
  const batch = (who) => Array.from({ length: 3 }, (_, i) => `${who} #${i} ✓ (order-${who}-${i})`);
  const sends = { doctor: batch('doctor'), patient: batch('patient'), station: batch('station') };
  SENT.push(...Object.values(sends).flat());
  await Promise.all(Object.entries(sends).map(([name, texts]) => pages[name].evaluate((texts) => {
    for (const t of texts) /** @type {any} */ (window).__kham.sendChat(t);
  }, texts)));
  // The station has not opened its panel: the unread mark counts the others' messages.
  await station.waitForFunction(() => document.querySelectorAll('#chat-list [data-testid="chat-message"]').length >= 9, null, { timeout: 5000 });
  const unread = await station.textContent('[data-testid="chat-unread"]');
  assert.equal(unread, '6', 'six messages from the two others are unread');
  const typed = 'Huyết áp 130/85, đã đo lại (typed-K9)';
  SENT.push(typed);
  await station.click('[data-testid="chat-toggle"]');
  assert.equal(await station.$('[data-testid="chat-unread"]'), null, 'opening the panel clears the mark');
  await station.fill('[data-testid="chat-input"]', typed);
  await station.click('[data-testid="chat-send"]');

  const want = Object.values(sends).flat().length + 1;
  for (const name of ['doctor', 'patient', 'station']) {
    await pages[name].waitForFunction((n) => document.querySelectorAll('#chat-list [data-testid="chat-message"]').length >= n + (window.__kham.me.role === 'doctor' ? 1 : 0), want, { timeout: 5000 });
  }
  const lists = {};
  for (const name of ['doctor', 'patient', 'station']) {
    // The doctor's panel also holds its lobby message; the call's messages follow it.
    lists[name] = (await shown(pages[name])).filter((m) => !m.text.includes('lobby-7Q2'));
  }
  const order = (l) => l.map((m) => `${m.seq}:${m.text}`);
  console.log(`chat order seen by all three: ${lists.doctor.map((m) => m.seq).join(',')}`);
  assert.deepEqual(order(lists.patient), order(lists.doctor), 'the patient sees the doctor\'s order');
  assert.deepEqual(order(lists.station), order(lists.doctor), 'the station sees the doctor\'s order');
  assert.equal(lists.doctor.length, want, 'each message exactly once');
  const seqs = lists.doctor.map((m) => m.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'shown in seq order');
  for (const [who, texts] of Object.entries(sends)) {
    assert.deepEqual(lists.doctor.map((m) => m.text).filter((t) => t.startsWith(`${who} #`)), texts, `${who}'s messages in the order sent`);
  }
  assert.equal(lists.doctor[lists.doctor.length - 1].text, typed, 'the typed message came last');
  assert.match(lists.patient.find((m) => m.text === typed)?.sender || '', /Trạm y tế xã Tân Phú \(Trạm y tế\)/);
  assert.match(lists.station.find((m) => m.text === typed)?.sender || '', /^Bạn/, 'own messages are marked');
  await screenshot(station, 'chat-call-station');
});

test('the chat speaks English after the language switch', async () => {
  const { station } = pages;
  assert.equal((await station.textContent('#chat-title'))?.trim(), 'Tin nhắn');
  assert.equal(await station.getAttribute('[data-testid="chat-input"]', 'placeholder'), 'Nhập tin nhắn…');
  await station.click('[data-testid="lang-toggle"]');
  assert.equal((await station.textContent('#chat-title'))?.trim(), 'Messages');
  assert.equal(await station.getAttribute('[data-testid="chat-input"]', 'placeholder'), 'Type a message…');
  assert.equal((await station.textContent('[data-testid="chat-send"]'))?.trim(), 'Send');
  const patientLine = (await shown(station)).find((m) => m.text.startsWith('patient #0'));
  assert.match(patientLine?.sender || '', /Trần Thị Bình \(Patient\)/, 'roles relabelled');
  await station.click('[data-testid="lang-toggle"]');
});

test('an oversized message and a flood get typed errors; the others are untouched', async () => {
  const { station, doctor } = pages;
  // The SDK refuses past 2000 bytes (1001 two-byte letters), and so does the server.
  const sdk = await station.evaluate(() => {
    try {
      /** @type {any} */ (window).__kham.sendChat('ă'.repeat(1001));
      return 'sent';
    } catch (e) {
      return `${e.name}:${/** @type {any} */ (e).code}`;
    }
  });
  assert.equal(sdk, 'ChatError:too_large');
  const errors = await station.evaluate(async () => {
    const c = /** @type {any} */ (window).__kham;
    /** @type {string[]} */
    const codes = [];
    const on = (/** @type {any} */ e) => codes.push(e.detail.code);
    c.addEventListener('error', on);
    c._send({ type: 'chat', text: 'ă'.repeat(1001) + 'oversize-Z3' });
    // A flood: 20 at once, past the 8-message chat allowance.
    for (let i = 0; i < 20; i++) c._send({ type: 'chat', text: `flood ${i} (flood-W4)` });
    await new Promise((r) => setTimeout(r, 1500));
    c.removeEventListener('error', on);
    return codes;
  });
  SENT.push('oversize-Z3', 'flood-W4');
  console.log(`errors on oversize + flood: ${errors.join(',')}`);
  assert.equal(errors[0], 'too_large', 'the oversized message is refused as too_large');
  assert.ok(errors.filter((c) => c === 'rate_limited').length >= 10, 'the flood past the allowance is refused');
  assert.match(await station.textContent('#toast') || '', /quá nhanh/, 'the user is told, in Vietnamese');
  const flooded = (await shown(doctor)).filter((m) => m.text.includes('flood-W4')).length;
  console.log(`flood: ${flooded} of 20 relayed`);
  assert.ok(flooded >= 1 && flooded <= 10, `only the allowance is relayed (${flooded})`);
  assert.equal((await shown(doctor)).some((m) => m.text.includes('oversize-Z3')), false);
  // The station is still in the call (its socket was not closed) and chat works again later.
  await station.waitForTimeout(2000);
  await station.evaluate(() => /** @type {any} */ (window).__kham.sendChat('still here (after-flood-V5)'));
  SENT.push('after-flood-V5');
  await doctor.waitForFunction(() => [...document.querySelectorAll('#chat-list [data-testid="chat-text"]')].some((e) => e.textContent?.includes('after-flood-V5')), null, { timeout: 5000 });
});

test('the server logged none of the texts; the pages forget them when the consult ends', async () => {
  const log = kham.log();
  assert.ok(log.length > 0, 'the server logged something');
  for (const text of SENT) {
    const marker = text.match(/\(([^)]+)\)$/)?.[1] || text;
    assert.equal(log.includes(marker), false, `"${marker}" is not in the server log`);
  }
  const { doctor, patient } = pages;
  await doctor.evaluate(() => /** @type {any} */ (window).__kham.endConsult());
  await patient.waitForSelector(visible('call-ended'));
  assert.equal(await patient.$$eval('[data-testid="chat-message"]', (els) => els.length), 0, 'no message left on the page');
});
