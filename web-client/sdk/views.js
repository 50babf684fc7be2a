// Adaptive stream reporting for the kham SDK: watches the <video> elements that show remote
// participants and tells the server (`video_view`, crates/proto/PROTOCOL.md) how large each
// received video is drawn, in device pixels, and whether it can be seen at all. The server then
// forwards no layer larger than the tile needs and nothing for a hidden tile.
//
// An element counts as visible when it has a non-zero size, intersects the viewport and the page
// is visible (document.visibilityState). To hide a paused video, use `visibility: hidden` or
// `opacity: 0` on it, not `display: none`: a display:none element measures 0 x 0 and is reported
// hidden, which keeps its video paused.

/**
 * One entry of a `video_view` message.
 * @typedef {object} VideoView
 * @property {string} mid
 * @property {number} width    device pixels (CSS px x devicePixelRatio, rounded)
 * @property {number} height
 * @property {boolean} visible
 */

/** At most 4 reports a second (PROTOCOL.md). */
export const VIEW_MIN_INTERVAL_MS = 250;
/** Changes arriving together (a layout pass resizing every tile) go out as one report. */
const VIEW_COALESCE_MS = 50;
/** The protocol's limits: 64 views, sizes within 7680 x 4320. */
const MAX_VIEWS = 64;
const MAX_WIDTH = 7680;
const MAX_HEIGHT = 4320;

/**
 * @typedef {object} Watched
 * @property {string} participantId
 * @property {number} cssWidth
 * @property {number} cssHeight
 * @property {boolean} intersecting
 */

export class ViewReporter {
  /**
   * @param {object} o
   * @param {() => Iterable<{mid: string, participantId: string}>} o.videoMids
   *   the received video mids and whose they are (the server's current mapping)
   * @param {(views: VideoView[]) => boolean} o.send
   *   sends a report; returns false when it cannot be sent now (not admitted, socket closed)
   */
  constructor({ videoMids, send }) {
    this._videoMids = videoMids;
    this._sendViews = send;
    /** @type {Map<Element, Watched>} */
    this._watched = new Map();
    /** JSON of the last report sent; '[]' so that "nothing watched" is never sent first. */
    this._lastKey = '[]';
    this._lastSentAt = -Infinity;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this._timer = null;
    this._disposed = false;

    this._resize = new ResizeObserver((entries) => {
      for (const e of entries) {
        const w = this._watched.get(e.target);
        if (!w) continue;
        w.cssWidth = e.contentRect.width;
        w.cssHeight = e.contentRect.height;
      }
      this.changed();
    });
    this._intersect = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const w = this._watched.get(e.target);
        if (w) w.intersecting = e.isIntersecting;
      }
      this.changed();
    });
    this._onPageChange = () => this.changed();
    document.addEventListener('visibilitychange', this._onPageChange);
    // A zoom or a move to another screen changes devicePixelRatio and fires `resize`.
    window.addEventListener('resize', this._onPageChange);
  }

  /**
   * Starts watching the element that shows a participant's video (one element per participant;
   * a new one replaces the old).
   * @param {string} participantId
   * @param {Element} el
   */
  observe(participantId, el) {
    for (const [other, w] of this._watched) {
      if (w.participantId === participantId && other !== el) this.unobserve(other);
    }
    const known = this._watched.get(el);
    if (known) {
      known.participantId = participantId;
    } else {
      // Sizes and visibility arrive with the observers' first callbacks.
      this._watched.set(el, { participantId, cssWidth: 0, cssHeight: 0, intersecting: false });
      this._resize.observe(el);
      this._intersect.observe(el);
    }
    this.changed();
  }

  /** @param {Element} el */
  unobserve(el) {
    if (!this._watched.delete(el)) return;
    this._resize.unobserve(el);
    this._intersect.unobserve(el);
    this.changed();
  }

  /**
   * Something that may change the report happened (an element's size or visibility, the mid
   * mapping, admission): sends a new report soon, at most every VIEW_MIN_INTERVAL_MS, and only
   * when it differs from the last one.
   */
  changed() {
    if (this._disposed || this._timer !== null) return;
    const wait = Math.max(VIEW_COALESCE_MS, this._lastSentAt + VIEW_MIN_INTERVAL_MS - performance.now());
    this._timer = setTimeout(() => {
      this._timer = null;
      this._flush();
    }, wait);
  }

  /** The current views of every watched, received video. @returns {VideoView[]} */
  views() {
    /** @type {Map<string, Watched>} */
    const byParticipant = new Map();
    for (const [el, w] of this._watched) {
      if (el.isConnected) byParticipant.set(w.participantId, w);
    }
    const dpr = window.devicePixelRatio || 1;
    const pageVisible = document.visibilityState === 'visible';
    /** @type {VideoView[]} */
    const views = [];
    for (const { mid, participantId } of this._videoMids()) {
      const w = byParticipant.get(participantId);
      if (!w) continue;
      const width = Math.min(MAX_WIDTH, Math.round(w.cssWidth * dpr));
      const height = Math.min(MAX_HEIGHT, Math.round(w.cssHeight * dpr));
      const visible = pageVisible && w.intersecting && width > 0 && height > 0;
      views.push({ mid, width, height, visible });
      if (views.length === MAX_VIEWS) break;
    }
    views.sort((a, b) => (a.mid < b.mid ? -1 : a.mid > b.mid ? 1 : 0));
    return views;
  }

  _flush() {
    if (this._disposed) return;
    const views = this.views();
    const key = JSON.stringify(views);
    if (key === this._lastKey) return;
    // Not sendable now (e.g. still in the lobby): the next change, or admission, tries again.
    if (!this._sendViews(views)) return;
    this._lastKey = key;
    this._lastSentAt = performance.now();
  }

  /** Stops watching everything (the session is over). */
  dispose() {
    this._disposed = true;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    this._resize.disconnect();
    this._intersect.disconnect();
    this._watched.clear();
    document.removeEventListener('visibilitychange', this._onPageChange);
    window.removeEventListener('resize', this._onPageChange);
  }
}
