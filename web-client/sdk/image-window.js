// The window of an image transfer, sized by the delay its own acknowledgements show (in the
// spirit of LEDBAT and TCP Vegas; written for kham). The SFU forwards the image channel's SCTP
// without pacing it, so whatever the sender keeps unacknowledged beyond the path's
// bandwidth-delay product waits in the bottleneck's queue, in front of the receiver's audio:
// 64 KiB over 200 kbit/s is 2.6 s. The sender therefore times each chunk from its send to the
// receiver's acknowledgement, keeps the lowest such round trip per receiver as the path's base,
// and once per round (a window's worth of acknowledgements) resizes the window so that the
// round trip would sit TARGET_MS above the base: at the rate the last round achieved
// (window / round trip), window = rate x (base + TARGET_MS). Round trips at the base grow it (at
// most doubling per round: on loopback 8 to 64 KiB in three rounds of a few ms); a queue beyond
// the target shrinks it (at most halving per round), between MIN_WINDOW and MAX_WINDOW.
// Chunks are a quarter of the window (1 to 16 KiB), so on a thin link a chunk's own
// serialisation (16 KiB: 0.8 s at 160 kbit/s) does not dominate the round trip either.

/** The largest window: the most a transfer keeps unacknowledged (fast links, loopback). */
export const MAX_WINDOW = 64 * 1024;
/** The smallest window. */
export const MIN_WINDOW = 4 * 1024;
/** The window a transfer starts with. */
export const INITIAL_WINDOW = 8 * 1024;
/** Largest and smallest chunk. */
export const MAX_CHUNK = 16 * 1024;
const MIN_CHUNK = 1024;
/** The queueing delay (round trip above the base) the window aims at, ms. */
export const TARGET_MS = 150;
/** How far one round moves the window towards the size it computed (damping). */
const GAIN = 0.5;
/** The base is the lowest round trip of the last one to two such periods, ms (a route that
 * changed does not keep an old, shorter base for ever). */
const BASE_PERIOD_MS = 30_000;

export class DelayWindow {
  constructor() {
    /** Bytes the sender may keep unacknowledged by its slowest receiver. */
    this.bytes = INITIAL_WINDOW;
    /** Per receiver: lowest round trip in this base period and the previous one, and the lowest
     * of the current round. @type {Map<string, {min: number, prev: number, since: number, round: number}>} */
    this.paths = new Map();
    /** The round ends when the slowest receiver acknowledged a byte past this offset (the first
     * chunk sent after the previous round ended). */
    this.roundEnd = 0;
  }

  /** Bytes of the next chunk: a quarter of the window `w` (this one by default, or its share
   * when split with other transfers), whole KiB, 1 to 16 KiB. @param {number} [w] */
  chunk(w = this.bytes) {
    return Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.floor(w / 4 / 1024) * 1024));
  }

  /**
   * A chunk sent at `sentAt` was acknowledged by `who` at `now` (ms).
   * @param {string} who @param {number} sentAt @param {number} now
   */
  sample(who, sentAt, now) {
    const rtt = Math.max(1, now - sentAt);
    let p = this.paths.get(who);
    if (!p) {
      p = { min: rtt, prev: rtt, since: now, round: Infinity };
      this.paths.set(who, p);
    }
    if (now - p.since > BASE_PERIOD_MS) {
      p.prev = p.min;
      p.min = rtt;
      p.since = now;
    }
    p.min = Math.min(p.min, rtt);
    p.round = Math.min(p.round, rtt);
  }

  /** The base round trip towards `who`. @param {string} who */
  base(who) {
    const p = this.paths.get(who);
    return p ? Math.min(p.min, p.prev) : Infinity;
  }

  /** A receiver is given up: its round trips no longer count. @param {string} who */
  forget(who) {
    this.paths.delete(who);
  }

  /**
   * The slowest receiver has `acked` bytes and the sender has sent `sent`: at the end of a
   * round, resize by the receiver whose round trips rose most above its base.
   * @param {number} acked @param {number} sent
   */
  acked(acked, sent) {
    if (acked <= this.roundEnd) return;
    let worst = null;
    for (const [who, p] of this.paths) {
      if (p.round === Infinity) continue;
      const queued = p.round - this.base(who);
      if (!worst || queued > worst.queued) worst = { queued, rtt: p.round, base: this.base(who) };
      p.round = Infinity;
    }
    this.roundEnd = sent;
    if (!worst) return;
    const ideal = (this.bytes * (worst.base + TARGET_MS)) / worst.rtt;
    const next = this.bytes + GAIN * (ideal - this.bytes);
    this.bytes = Math.round(Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, this.bytes / 2, Math.min(2 * this.bytes, next))));
  }
}
