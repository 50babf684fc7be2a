// The consult's binary formats, in node without a browser (issue 16): the vital-signs framing
// (encode, decode, the server's forwarded form, bad input), the Web Bluetooth GATT parsers with
// the standard's own encodings, and the still-image transfer's frames and receiver.
//
//   node --test consult-frames.test.mjs

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeNumerics, encodeWave, decodeFrame, decodeForwarded, VitalsFrameError, FORWARDED,
} from '../../web-client/sdk/vitals-frame.js';
import {
  parseHeartRate, parsePlxContinuous, parseBloodPressure, parseTemperature, sfloat,
} from '../../web-client/app/vitals-ble.js';
import {
  encodeStart, encodeChunk, encodeEnd, encodeAck, decodeImageFrame, ImageReceiver, sha256Hex, MAX_IMAGE_BYTES,
  sendImage, STALL_MS,
} from '../../web-client/sdk/images.js';
import {
  DelayWindow, MAX_WINDOW, MIN_WINDOW, INITIAL_WINDOW, MAX_CHUNK, TARGET_MS,
} from '../../web-client/sdk/image-window.js';

/** What the server makes of a client frame from `source` (crates/sfu/src/vitals.rs). */
function forward(source, frame) {
  const id = Buffer.from(source);
  return new Uint8Array([frame[0], frame[1] | FORWARDED, id.length, ...id, ...frame.subarray(2)]);
}

const dv = (bytes) => new DataView(Uint8Array.from(bytes).buffer);

test('numerics and waveforms survive the round trip through the server\'s form', () => {
  const n = encodeNumerics(1_700_000_000_123.25, { hr: 72, spo2: 97, bp_sys: 128, bp_dia: 82, temp: 36.8 });
  assert.deepEqual([n[0], n[1]], [1, 1]);
  const { source, frame } = decodeForwarded(forward('p-abc', n));
  assert.equal(source, 'p-abc');
  assert.equal(frame.kind, 'numerics');
  assert.equal(frame.t, 1_700_000_000_123.25, 'the sender\'s clock, to the fraction');
  assert.equal(frame.values.hr, 72);
  assert.ok(Math.abs(frame.values.temp - 36.8) < 1e-5);
  const ecg = Float32Array.from({ length: 10 }, (_, i) => Math.sin(i) * 1.2);
  const w = encodeWave('ecg', 250, 4_000_000_123, 1234.5, ecg);
  assert.equal(w.length, 19 + 20, 'a 40 ms ECG frame at 250 Hz is 39 bytes');
  const back = decodeForwarded(forward('p-x', w)).frame;
  assert.equal(back.kind, 'wave');
  assert.equal(back.signal, 'ecg');
  assert.equal(back.rate, 250);
  assert.equal(back.seq, 4_000_000_123);
  assert.equal(back.t0, 1234.5);
  for (let i = 0; i < 10; i++) assert.ok(Math.abs(back.samples[i] - ecg[i]) <= 0.0005, 'microvolt resolution');
  // Out-of-range samples clip instead of wrapping.
  const clipped = decodeFrame(encodeWave('ecg', 250, 0, 0, [100, -100]));
  assert.deepEqual([...clipped.samples].map((x) => Math.round(x * 1000)), [32767, -32768]);
});

test('bad frames are typed errors, never a crash', () => {
  const bad = [
    new Uint8Array([]), new Uint8Array([1]), new Uint8Array([2, 1, 0, 0]), new Uint8Array([1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    new Uint8Array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9]), // claims 9 entries, has none
    new Uint8Array([1, 2, 1, 250, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0]), // claims 50 samples
  ];
  for (const b of bad) assert.throws(() => decodeFrame(b), VitalsFrameError, `${[...b]}`);
  assert.throws(() => decodeForwarded(new Uint8Array([1, 1, 0])), VitalsFrameError, 'not forwarded');
  assert.throws(() => decodeForwarded(new Uint8Array([1, 0x81, 40, 1])), VitalsFrameError, 'source id past the end');
});

test('Web Bluetooth GATT measurements parse as the standard encodes them', () => {
  assert.deepEqual(parseHeartRate(dv([0x00, 72])), { hr: 72 }, 'uint8 format');
  assert.deepEqual(parseHeartRate(dv([0x01, 0x2c, 0x01])), { hr: 300 }, 'uint16 format');
  // SFLOAT: 4-bit exponent, 12-bit mantissa. 98 = 0x0062; 36.5 = 365 x 10^-1 = 0xF16D.
  assert.equal(sfloat(dv([0x62, 0x00]), 0), 98);
  assert.ok(Math.abs(sfloat(dv([0x6d, 0xf1]), 0) - 36.5) < 1e-9);
  assert.ok(Number.isNaN(sfloat(dv([0xff, 0x07]), 0)), 'NaN special value');
  assert.deepEqual(parsePlxContinuous(dv([0x00, 0x62, 0x00, 0x48, 0x00])), { spo2: 98, hr: 72 });
  const bp = parseBloodPressure(dv([0x00, 0x78, 0x00, 0x50, 0x00, 0x5d, 0x00]));
  assert.deepEqual(bp, { bp_sys: 120, bp_dia: 80, bp_mean: 93 });
  const kpa = parseBloodPressure(dv([0x01, 0x10, 0x00, 0x0b, 0x00, 0x0c, 0x00]));
  assert.ok(Math.abs(kpa.bp_sys - 120) < 0.1, `16 kPa is 120 mmHg (${kpa.bp_sys})`);
  // FLOAT: 8-bit exponent, 24-bit mantissa. 36.8 = 368 x 10^-1 = 0xFF000170.
  const c = parseTemperature(dv([0x00, 0x70, 0x01, 0x00, 0xff]));
  assert.ok(Math.abs(c.temp - 36.8) < 1e-9);
  const f = parseTemperature(dv([0x01, 0xe4, 0x03, 0x00, 0xff])); // 99.6 °F
  assert.ok(Math.abs(f.temp - 37.556) < 0.01, `°F converted (${f.temp})`);
});

test('image frames round-trip; the receiver reassembles, acknowledges and bounds', async () => {
  assert.deepEqual(decodeImageFrame(encodeStart(7, 100, 'image/png')), { kind: 'start', id: 7, size: 100, type: 'image/png' });
  assert.deepEqual(decodeImageFrame(encodeEnd(7, 1)), { kind: 'end', id: 7, status: 1 });
  assert.deepEqual(decodeImageFrame(encodeAck(7, 'p-s', 64)), { kind: 'ack', id: 7, sender: 'p-s', received: 64 });
  assert.equal(decodeImageFrame(new Uint8Array([1, 4, 0])), null, 'short frame');
  const sent = [];
  const events = [];
  const r = new ImageReceiver({ me: 'p-d', send: (f) => { sent.push(decodeImageFrame(f)); return true; }, buffered: () => 0 }, {
    progress: (from, id, got, size) => events.push(['progress', from, got, size]),
    done: (from, id, bytes) => events.push(['done', from, bytes]),
    failed: (from, id, code) => events.push(['failed', from, code]),
  });
  try {
    const data = Uint8Array.from({ length: 40_000 }, (_, i) => (i * 7) & 255);
    r.handle('p-s', encodeStart(9, data.length, 'image/bmp'));
    for (let off = 0; off < data.length; off += 16_384) r.handle('p-s', encodeChunk(9, off, data.subarray(off, off + 16_384)));
    r.handle('p-s', encodeEnd(9, 0));
    const done = events.find((e) => e[0] === 'done');
    assert.ok(done, 'complete');
    assert.equal(await sha256Hex(done[2]), await sha256Hex(data), 'the same bytes');
    assert.deepEqual(sent.map((a) => a.received), [0, 16_384, 32_768, 40_000], 'acknowledged at the start and after every chunk');
    // A chunk out of place breaks the transfer; a start past the limit is refused.
    r.handle('p-s', encodeStart(10, 100, 'image/png'));
    r.handle('p-s', encodeChunk(10, 50, new Uint8Array(10)));
    r.handle('p-t', encodeStart(11, MAX_IMAGE_BYTES + 1, 'image/png'));
    assert.deepEqual(events.filter((e) => e[0] === 'failed'), [['failed', 'p-s', 'bad_chunk'], ['failed', 'p-t', 'too_large']]);
    assert.equal(r.transfers.size, 0, 'nothing held');
  } finally {
    r.close();
  }
});

test('a transfer that never completes is given up; a receiver holds one per sender', () => {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
  const events = [];
  const r = new ImageReceiver({ me: 'p-d', send: () => true, buffered: () => 0 }, {
    progress: () => {},
    done: () => events.push('done'),
    failed: (from, id, code) => events.push(`${from}:${id}:${code}`),
  });
  try {
    r.handle('p-s', encodeStart(1, 4 * 1024 * 1024, 'image/bmp'));
    r.handle('p-s', encodeChunk(1, 0, new Uint8Array(16_384)));
    // A new start from the same sender replaces the old transfer (one buffer per sender).
    r.handle('p-s', encodeStart(2, 4 * 1024 * 1024, 'image/bmp'));
    r.handle('p-t', encodeStart(3, 1000, 'image/png'));
    assert.equal(r.inFlight, 2);
    assert.deepEqual(events, ['p-s:1:cancelled']);
    // Chunks keep p-t's transfer alive; p-s sends nothing more.
    for (let t = 0; t < STALL_MS + 5000; t += 5000) {
      r.handle('p-t', encodeChunk(3, t / 50, new Uint8Array(100)));
      mock.timers.tick(5000);
    }
    assert.deepEqual(events, ['p-s:1:cancelled', 'p-s:2:stalled'], 'the silent transfer is given up');
    assert.equal(r.inFlight, 1, 'its buffer is dropped; the live one goes on');
  } finally {
    r.close();
    mock.timers.reset();
  }
});

test('a sender keeps at most its window unacknowledged, split with others\' transfers', async () => {
  for (const others of [0, 1, 3]) {
    const frames = [];
    const acks = new Set();
    let open = true;
    const link = { me: 'p-s', send: (f) => { frames.push(decodeImageFrame(f)); return open; }, buffered: () => 0, others: () => others };
    const bytes = new Uint8Array(300_000);
    const sending = sendImage(link, bytes, 'image/bmp', () => {}, (fn) => { acks.add(fn); return () => acks.delete(fn); });
    sending.catch(() => {});
    // One receiver announces itself and then acknowledges nothing more.
    await new Promise((r) => setTimeout(r, 50));
    for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: 0 });
    await new Promise((r) => setTimeout(r, 1900));
    const chunked = frames.filter((f) => f.kind === 'chunk').reduce((n, f) => n + f.bytes.length, 0);
    // The first window (before any round trip was measured), split.
    const window = Math.max(MIN_WINDOW, INITIAL_WINDOW / (1 + others));
    console.log(`others ${others}: ${chunked} bytes unacknowledged`);
    assert.ok(chunked > 0 && chunked <= window, `within the window (${chunked} of ${window})`);
    // Acknowledged: more goes.
    for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: chunked });
    await new Promise((r) => setTimeout(r, 300));
    const more = frames.filter((f) => f.kind === 'chunk').reduce((n, f) => n + f.bytes.length, 0);
    assert.ok(more > chunked, 'an acknowledgement opens the window');
    // The channel closes: the transfer ends with a typed error.
    open = false;
    for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: more });
    await assert.rejects(sending, { name: 'ImageError', code: 'stalled' });
  }
});

test('a receiver that acknowledges only every 32 KiB (before per-chunk acknowledgements) does not stall a sender', async () => {
  const frames = [];
  const acks = new Set();
  const link = { me: 'p-s', send: (f) => { frames.push(decodeImageFrame(f)); return true; }, buffered: () => 0 };
  const sending = sendImage(link, new Uint8Array(100_000), 'image/bmp', () => {}, (fn) => { acks.add(fn); return () => acks.delete(fn); });
  sending.catch(() => {});
  await new Promise((r) => setTimeout(r, 50));
  for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: 0 });
  const chunked = () => frames.filter((f) => f.kind === 'chunk').reduce((n, f) => n + f.bytes.length, 0);
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(chunked(), INITIAL_WINDOW, 'the first window, then nothing without an acknowledgement');
  await new Promise((r) => setTimeout(r, 1600));
  assert.ok(chunked() >= 32 * 1024 && chunked() <= 32 * 1024 + MAX_CHUNK, `after 3 s without one, enough for a 32 KiB acknowledgement (${chunked()})`);
  for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: 32 * 1024 });
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(chunked() > 32 * 1024 + 2048, 'and on once it came');
  for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: 100_000 });
  for (let i = 0; i < 50 && chunked() < 100_000; i++) {
    await new Promise((r) => setTimeout(r, 20));
    for (const fn of acks) fn('p-d', { id: frames[0].id, sender: 'p-s', received: chunked() });
  }
  assert.deepEqual(await sending, { id: frames[0].id, receivers: 1 });
});

test('the image window grows while round trips stay at the base and shrinks when they rise', () => {
  const w = new DelayWindow();
  let t = 0;
  let sent = 0;
  /** One round (the first chunk sent after the last round ended is acknowledged): each
   * receiver's chunk round trip in ms; the window's size after it. */
  const round = (/** @type {Record<string, number>} */ rtts, /** @type {DelayWindow} */ d = w) => {
    const acked = sent + d.chunk();
    for (const [who, rtt] of Object.entries(rtts)) d.sample(who, t, t + rtt);
    t += Math.max(...Object.values(rtts));
    sent = acked + d.bytes;
    d.acked(acked, sent);
    return d.bytes;
  };
  // Loopback: a few ms, from the first window to the largest in a few rounds, never past it.
  const sizes = [0, 1, 2, 3, 4, 5].map(() => round({ a: 3 }));
  assert.equal(sizes[0], 2 * INITIAL_WINDOW, 'at most doubled per round');
  assert.equal(Math.max(...sizes), MAX_WINDOW, 'up to the largest window');
  assert.equal(w.chunk(), MAX_CHUNK, 'whole chunks on a fast path');
  // A queue far beyond the target: halved per round at most, down to the smallest window.
  const down = [0, 1, 2, 3, 4, 5, 6, 7].map(() => round({ a: 3 + 1500 }));
  assert.ok(down[0] >= MAX_WINDOW / 2 && down[0] < 0.6 * MAX_WINDOW, `at most halved per round (${down[0]})`);
  assert.equal(Math.min(...down), MIN_WINDOW, 'down to the smallest window, not below');
  assert.ok(w.chunk() <= MIN_WINDOW / 4, 'smaller chunks in a small window');
  // The target queue: the window settles (no change when the round trip is base + target).
  w.bytes = 20_000;
  round({ a: 3 + TARGET_MS });
  assert.ok(Math.abs(w.bytes - 20_000) < 100, `steady at the target (${w.bytes})`);
  // Each receiver has its own base: a far one (300 ms) beside a near one is no queue.
  const v = new DelayWindow();
  for (let i = 0; i < 6; i++) round({ near: 3, far: 300 }, v);
  assert.equal(v.bytes, MAX_WINDOW, 'a long path at its base does not shrink the window');
});

test('over a 200 kbit/s / 150 ms bottleneck the window keeps the queue near its target, the link busy', () => {
  // Virtual time in ms: the sender's chunks and an audio packet every 60 ms share one FIFO
  // draining at 25 kB/s, 150 ms from the receiver each way; the receiver acknowledges each
  // chunk once its last byte arrived. A fixed 64 KiB window (before) against the DelayWindow.
  const run = (/** @type {boolean} */ fixed) => {
    const size = 1_048_576;
    const w = new DelayWindow();
    let sent = 0;
    let acked = 0;
    let busy = 0;
    const sentAt = new Map();
    /** @type {{t: number, off: number}[]} */
    const acks = [];
    /** @type {number[]} */
    const audio = [];
    for (let t = 0; t < 200_000; t++) {
      while (acks.length && acks[0].t <= t) {
        const a = /** @type {{t: number, off: number}} */ (acks.shift());
        w.sample('d', sentAt.get(a.off), t);
        acked = a.off;
        w.acked(acked, sent);
      }
      if (acked === size) return { seconds: t / 1000, audio: audio.sort((x, y) => x - y) };
      for (;;) {
        const n = Math.min(fixed ? MAX_CHUNK : w.chunk(), size - sent);
        if (n === 0 || sent - acked + n > (fixed ? MAX_WINDOW : w.bytes)) break;
        busy = Math.max(busy, t) + ((n + 80 * Math.ceil(n / 1150)) / 25_000) * 1000;
        sent += n;
        sentAt.set(sent, t);
        acks.push({ t: Math.ceil(busy + 300), off: sent });
      }
      if (t % 60 === 0) {
        busy = Math.max(busy, t) + (190 / 25_000) * 1000;
        audio.push(busy + 150 - t);
      }
    }
    throw new Error('did not finish');
  };
  const before = run(true);
  const after = run(false);
  const p95 = (/** @type {{audio: number[]}} */ r) => r.audio[Math.floor(0.95 * r.audio.length)];
  console.log(`modelled 1 MiB over 200 kbit/s / 150 ms: fixed 64 KiB ${before.seconds.toFixed(1)} s, audio p95 ${p95(before).toFixed(0)} ms; `
    + `delay-based ${after.seconds.toFixed(1)} s, audio p95 ${p95(after).toFixed(0)} ms`);
  assert.ok(p95(before) > 2000, 'the fixed window queues seconds in front of audio (the model holds)');
  assert.ok(p95(after) < 150 + 2 * TARGET_MS + 200, `audio waits little behind the image (p95 ${p95(after).toFixed(0)} ms)`);
  assert.ok(after.seconds < 1.05 * before.seconds, `the link stays busy (${after.seconds} s against ${before.seconds} s)`);
});
