// Still images over the reliable `kham-image` data channel (crates/proto/PROTOCOL.md, "Images"):
// chunked, full resolution, with end-to-end flow control (each receiver acknowledges every chunk,
// the sender keeps at most a window of bytes ahead of the slowest, split with the transfers from
// others it sees in flight), so a thin subscriber link never overflows the server's send buffer.
// The window follows the delay the acknowledgements show (image-window.js), so a transfer does
// not queue seconds of image in front of a thin receiver's audio. UI-free: the app shows
// progress and the picture.
//
//   start [1][3][id: u32][size: u32][type length: u8][MIME type]
//   chunk [1][4][id: u32][offset: u32][bytes]
//   end   [1][5][id: u32][status: u8]          0 complete, 1 cancelled
//   ack   [1][6][id: u32][len: u8][sender id][received: u32]
//
// (Forwarded by the server with the author's id in front, as every vitals frame.)

import { DelayWindow, MAX_WINDOW, MIN_WINDOW, MAX_CHUNK } from './image-window.js';

export const KIND_IMAGE_START = 3;
export const KIND_IMAGE_CHUNK = 4;
export const KIND_IMAGE_END = 5;
export const KIND_IMAGE_ACK = 6;
/** Largest image accepted, bytes. */
export const MAX_IMAGE_BYTES = 8 * 1024 * 1024;
/** Largest chunk (one data-channel message); a thin link gets smaller ones (image-window.js). */
export const CHUNK_BYTES = MAX_CHUNK;
/** Receivers before per-chunk acknowledgements acknowledged every 32 KiB: a sender whose
 * window is smaller and that hears nothing for ACK_STALL_MS lets that much out. */
const OLD_ACK_EVERY = 32 * 1024;
const ACK_STALL_MS = 3000;
/** Receivers announce themselves (ack 0) within this long of the start. */
const ANNOUNCE_MS = 1500;
/** A transfer without progress for this long is given up, by the sender and by receivers. */
export const STALL_MS = 30_000;

/** A typed image error: `too_large`, `empty`, `no_receivers`, `stalled`, `cancelled`. */
export class ImageError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'ImageError';
    this.code = code;
  }
}

/** @param {number} kind @param {number} id @param {number} extra */
function header(kind, id, extra) {
  const buf = new ArrayBuffer(6 + extra);
  const v = new DataView(buf);
  v.setUint8(0, 1);
  v.setUint8(1, kind);
  v.setUint32(2, id, true);
  return { buf, v };
}

/** @param {number} id @param {number} size @param {string} type */
export function encodeStart(id, size, type) {
  const t = new TextEncoder().encode(type.slice(0, 100));
  const { buf, v } = header(KIND_IMAGE_START, id, 5 + t.length);
  v.setUint32(6, size, true);
  v.setUint8(10, t.length);
  new Uint8Array(buf).set(t, 11);
  return new Uint8Array(buf);
}

/** @param {number} id @param {number} offset @param {Uint8Array} bytes */
export function encodeChunk(id, offset, bytes) {
  const { buf, v } = header(KIND_IMAGE_CHUNK, id, 4 + bytes.length);
  v.setUint32(6, offset, true);
  new Uint8Array(buf).set(bytes, 10);
  return new Uint8Array(buf);
}

/** @param {number} id @param {number} status */
export function encodeEnd(id, status) {
  const { buf, v } = header(KIND_IMAGE_END, id, 1);
  v.setUint8(6, status);
  return new Uint8Array(buf);
}

/** @param {number} id @param {string} sender @param {number} received */
export function encodeAck(id, sender, received) {
  const s = new TextEncoder().encode(sender);
  const { buf, v } = header(KIND_IMAGE_ACK, id, 5 + s.length);
  v.setUint8(6, s.length);
  new Uint8Array(buf).set(s, 7);
  v.setUint32(7 + s.length, received, true);
  return new Uint8Array(buf);
}

/**
 * Decodes a client image frame (version and kind already stripped of the forwarded mark).
 * @param {Uint8Array} b
 */
export function decodeImageFrame(b) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 6 || b[0] !== 1) return null;
  const id = v.getUint32(2, true);
  switch (b[1]) {
    case KIND_IMAGE_START: {
      if (b.length < 11 || b.length < 11 + b[10]) return null;
      return { kind: 'start', id, size: v.getUint32(6, true), type: new TextDecoder().decode(b.subarray(11, 11 + b[10])) };
    }
    case KIND_IMAGE_CHUNK:
      if (b.length < 10) return null;
      return { kind: 'chunk', id, offset: v.getUint32(6, true), bytes: b.subarray(10) };
    case KIND_IMAGE_END:
      if (b.length < 7) return null;
      return { kind: 'end', id, status: b[6] };
    case KIND_IMAGE_ACK: {
      if (b.length < 7 || b.length < 11 + b[6]) return null;
      const sender = new TextDecoder().decode(b.subarray(7, 7 + b[6]));
      return { kind: 'ack', id, sender, received: v.getUint32(7 + b[6], true) };
    }
    default:
      return null;
  }
}

/** SHA-256 of bytes, lower-case hex. @param {BufferSource} bytes */
export async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * @typedef {object} ImageLink  what the transfer needs from the SDK
 * @property {string} me                               own participant id
 * @property {(frame: Uint8Array<ArrayBuffer>) => boolean} send  on the image channel
 * @property {() => number} buffered                   the image channel's bufferedAmount
 * @property {() => number} [others]                   transfers from others in flight here
 */

/**
 * Sends one image. Resolves when every receiver acknowledged all of it.
 * @param {ImageLink} link
 * @param {Uint8Array} bytes
 * @param {string} type  MIME type
 * @param {(sent: number, acked: number, total: number) => void} onProgress
 * @param {(listener: (from: string, ack: {id: number, sender: string, received: number}) => void) => () => void} onAck
 *        subscribes to acks; returns the unsubscribe function
 */
export async function sendImage(link, bytes, type, onProgress, onAck) {
  if (bytes.length === 0) throw new ImageError('empty', 'the file is empty');
  if (bytes.length > MAX_IMAGE_BYTES) {
    throw new ImageError('too_large', `an image is at most ${MAX_IMAGE_BYTES / (1024 * 1024)} MiB`);
  }
  const id = (Math.random() * 0xffffffff) >>> 0;
  /** Received bytes per receiver. @type {Map<string, {received: number, at: number}>} */
  const receivers = new Map();
  /** The window, sized by the acknowledgements' round trips (image-window.js). */
  const win = new DelayWindow();
  /** When each chunk went, by the offset its acknowledgement names (its end), until the
   * slowest receiver has it. @type {Map<number, number>} */
  const sentAt = new Map();
  let sent = 0;
  /** When the slowest receiver last moved (or the transfer started). */
  let progressAt = Date.now();
  const slowest = () => (receivers.size ? Math.min(...[...receivers.values()].map((r) => r.received)) : 0);
  let wake = () => {};
  const off = onAck((from, ack) => {
    if (ack.id !== id || ack.sender !== link.me) return;
    const r = receivers.get(from);
    if (!r || ack.received > r.received) {
      const before = slowest();
      const now = Date.now();
      receivers.set(from, { received: ack.received, at: now });
      const at = sentAt.get(ack.received);
      if (at !== undefined) win.sample(from, at, now);
      const acked = slowest();
      if (acked > before) progressAt = now;
      win.acked(acked, sent);
      for (const end of sentAt.keys()) {
        if (end > acked) break;
        sentAt.delete(end);
      }
    }
    wake();
  });
  const sleep = (ms) => new Promise((r) => {
    const t = setTimeout(r, ms);
    wake = () => {
      clearTimeout(t);
      r(undefined);
    };
  });
  try {
    if (!link.send(encodeStart(id, bytes.length, type))) throw new ImageError('no_receivers', 'the image channel is not open');
    // Transfers from others share the server's send buffer towards each receiver (and the
    // receiver's link) with this one (crates/sfu/src/vitals.rs, SEND_BUFFER): the window is
    // split between them.
    const split = (/** @type {number} */ w) => Math.max(MIN_WINDOW, w / (1 + (link.others ? link.others() : 0)));
    /** The next chunk's length if it may go now, else 0. While receivers announce themselves
     * (`announcing`) at most one full window goes in all: one not heard from yet has none of it
     * acknowledged. */
    const next = (/** @type {boolean} */ announcing) => {
      let w = split(win.bytes);
      const n = Math.min(win.chunk(w), bytes.length - sent);
      if (w < OLD_ACK_EVERY && Date.now() - progressAt > ACK_STALL_MS) w = OLD_ACK_EVERY + n;
      const ok = n > 0 && sent - slowest() + n <= w && link.buffered() < MAX_WINDOW
        && (!announcing || sent + n <= split(MAX_WINDOW));
      return ok ? n : 0;
    };
    const chunk = (/** @type {number} */ n) => {
      if (!link.send(encodeChunk(id, sent, bytes.subarray(sent, sent + n)))) throw new ImageError('stalled', 'the image channel closed');
      sent += n;
      sentAt.set(sent, Date.now());
    };
    // While receivers announce themselves, the first window already goes: every receiver that
    // has the start gets it in order after it (over 200 kbit/s / 150 ms, 1.5 s of link saved).
    const announced = Date.now() + ANNOUNCE_MS;
    while (Date.now() < announced) {
      const n = next(true);
      if (n > 0) {
        chunk(n);
        onProgress(sent, 0, bytes.length);
        continue;
      }
      await sleep(Math.min(200, announced - Date.now()));
    }
    if (receivers.size === 0) throw new ImageError('no_receivers', 'nobody in the call can receive images');
    while (sent < bytes.length || slowest() < bytes.length) {
      const now = Date.now();
      for (const [who, r] of receivers) {
        // A receiver that stopped answering (left, or its page closed) is given up.
        if (now - r.at > STALL_MS) {
          receivers.delete(who);
          win.forget(who);
        }
      }
      if (receivers.size === 0) throw new ImageError('stalled', 'no receiver answers any more');
      const n = next(false);
      if (n > 0) {
        chunk(n);
        onProgress(sent, slowest(), bytes.length);
        continue;
      }
      onProgress(sent, slowest(), bytes.length);
      await sleep(200);
    }
    link.send(encodeEnd(id, 0));
    onProgress(bytes.length, bytes.length, bytes.length);
    return { id, receivers: receivers.size };
  } catch (err) {
    link.send(encodeEnd(id, 1));
    throw err;
  } finally {
    off();
  }
}

/**
 * Reassembles images from every other participant; bounded: one transfer per sender at a time,
 * MAX_IMAGE_BYTES each, given up after STALL_MS without progress.
 */
export class ImageReceiver {
  /**
   * @param {ImageLink} link
   * @param {{progress: (from: string, id: number, received: number, size: number) => void,
   *          done: (from: string, id: number, bytes: Uint8Array<ArrayBuffer>, type: string) => void,
   *          failed: (from: string, id: number, code: string) => void}} on
   */
  constructor(link, on) {
    this.link = link;
    this.on = on;
    /** @type {Map<string, {id: number, size: number, type: string, buf: Uint8Array<ArrayBuffer>, received: number, at: number}>} */
    this.transfers = new Map();
    this.timer = setInterval(() => this._expire(), 5000);
  }

  /** One image frame from `from`. @param {string} from @param {Uint8Array} frame */
  handle(from, frame) {
    const f = decodeImageFrame(frame);
    if (!f || f.kind === 'ack') return;
    const t = this.transfers.get(from);
    if (f.kind === 'start') {
      if (t) this.on.failed(from, t.id, 'cancelled');
      this.transfers.delete(from);
      if (f.size === 0 || f.size > MAX_IMAGE_BYTES) {
        this.on.failed(from, f.id, 'too_large');
        return;
      }
      this.transfers.set(from, { id: f.id, size: f.size, type: f.type, buf: new Uint8Array(f.size), received: 0, at: Date.now() });
      this.link.send(encodeAck(f.id, from, 0));
      this.on.progress(from, f.id, 0, f.size);
      return;
    }
    if (!t || t.id !== f.id) return;
    if (f.kind === 'chunk') {
      // Reliable and ordered: a chunk not at the expected offset is a broken sender.
      if (f.offset !== t.received || f.offset + f.bytes.length > t.size) {
        this.transfers.delete(from);
        this.on.failed(from, t.id, 'bad_chunk');
        return;
      }
      t.buf.set(f.bytes, f.offset);
      t.received += f.bytes.length;
      t.at = Date.now();
      // Every chunk: the sender times each one's round trip to size its window.
      this.link.send(encodeAck(t.id, from, t.received));
      this.on.progress(from, t.id, t.received, t.size);
      return;
    }
    // end
    this.transfers.delete(from);
    if (f.status === 0 && t.received === t.size) this.on.done(from, t.id, t.buf, t.type);
    else this.on.failed(from, t.id, f.status === 0 ? 'incomplete' : 'cancelled');
  }

  /** A participant left: its transfer is dropped. @param {string} from */
  forget(from) {
    const t = this.transfers.get(from);
    if (t) this.on.failed(from, t.id, 'cancelled');
    this.transfers.delete(from);
  }

  /** Transfers from others in flight here. */
  get inFlight() {
    return this.transfers.size;
  }

  _expire() {
    const now = Date.now();
    for (const [from, t] of this.transfers) {
      if (now - t.at > STALL_MS) {
        this.transfers.delete(from);
        this.on.failed(from, t.id, 'stalled');
      }
    }
  }

  close() {
    clearInterval(this.timer);
    this.transfers.clear();
  }
}
