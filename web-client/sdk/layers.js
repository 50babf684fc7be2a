// Dynacast for the kham SDK: the server's `publish_layers` message says what each simulcast
// encoding of this client's own video should send (crates/proto/PROTOCOL.md): whether it is
// needed at all, and, for an encoding the server shapes, a bitrate, frame-rate and resolution
// limit. They are applied with RTCRtpSender.setParameters (no renegotiation), so a weak uplink
// carries only what is watched, the lowest encoding fits the weakest viewer, and the top one
// follows the best viewer's link. A single encoding (the screen share) only has its bitrate
// capped, to its weakest viewer's link.

/**
 * @typedef {object} LayerWish
 * @property {string} rid     simulcast encoding id (q, h or f); "" for a single encoding
 * @property {boolean} active
 * @property {number} [max_bitrate]               bit/s; absent = this client's default
 * @property {number} [max_framerate]             frames/s; absent = no limit
 * @property {number} [scale_resolution_down_by]  absent = this client's default
 */

/**
 * @typedef {object} EncodingDefaults
 * @property {string} rid
 * @property {number} [maxBitrate]
 * @property {number} [scaleResolutionDownBy]
 */

/** Smallest picture the server may ask for, in lines: below it the limit is ignored. */
const MIN_HEIGHT = 90;

/**
 * A positive finite number, or undefined.
 * @param {unknown} v
 * @returns {number|undefined}
 */
function positive(v) {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

/**
 * Applies the server's wishes to the encodings of the sender whose transceiver has `mid`;
 * encodings whose rid is not listed keep their state. A limit the message leaves out returns to
 * `defaults` (what the client published with). setParameters is called only when something
 * changes. A scale that would make the picture smaller than 90 lines is not applied. Resolves
 * with every encoding's state afterwards, or null when there is no such sender.
 * @param {RTCPeerConnection} pc
 * @param {string} mid
 * @param {LayerWish[]} layers
 * @param {readonly EncodingDefaults[]} [defaults]
 * @returns {Promise<{rid: string, active: boolean, maxBitrate?: number, maxFramerate?: number, scaleResolutionDownBy?: number}[]|null>}
 */
export async function applyPublishLayers(pc, mid, layers, defaults = []) {
  const transceiver = pc.getTransceivers().find((tr) => tr.mid === mid);
  if (!transceiver || !transceiver.sender) {
    console.warn(`kham: publish_layers for mid ${mid}: no such sender`);
    return null;
  }
  const sender = transceiver.sender;
  /** @type {Map<string, LayerWish>} */
  const wanted = new Map();
  for (const l of layers) {
    if (l && typeof l.rid === 'string' && typeof l.active === 'boolean') wanted.set(l.rid, l);
  }
  const params = sender.getParameters();
  const encodings = params.encodings || [];
  const captureHeight = sender.track?.getSettings?.().height;
  let changed = false;
  /**
   * @param {RTCRtpEncodingParameters} enc
   * @param {'active'|'maxBitrate'|'maxFramerate'|'scaleResolutionDownBy'} key
   * @param {unknown} value
   */
  const set = (enc, key, value) => {
    const e = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (enc));
    if (e[key] === value) return;
    if (value === undefined) {
      if (!(key in e)) return;
      delete e[key];
    } else {
      e[key] = value;
    }
    changed = true;
  };
  for (const enc of encodings) {
    if (enc.rid === undefined) {
      // A single encoding (the screen share): the server names it "" and caps its bitrate to
      // its weakest viewer (back to the default for "" when it leaves the cap out); it is never
      // stopped or scaled from here.
      const wish = encodings.length === 1 ? wanted.get('') : undefined;
      const base = defaults.find((d) => d.rid === '');
      if (wish) set(enc, 'maxBitrate', positive(wish.max_bitrate) ?? base?.maxBitrate);
      continue;
    }
    const wish = wanted.get(enc.rid);
    if (!wish) continue;
    /** @type {EncodingDefaults} */
    const base = defaults.find((d) => d.rid === enc.rid) || { rid: enc.rid };
    set(enc, 'active', wish.active);
    set(enc, 'maxBitrate', positive(wish.max_bitrate) ?? base.maxBitrate);
    set(enc, 'maxFramerate', positive(wish.max_framerate));
    let scale = positive(wish.scale_resolution_down_by);
    if (scale !== undefined && captureHeight && captureHeight / scale < MIN_HEIGHT) scale = undefined;
    set(enc, 'scaleResolutionDownBy', Math.max(1, scale ?? base.scaleResolutionDownBy ?? 1));
  }
  if (changed) await sender.setParameters(params);
  return encodings.map((e) => ({
    rid: e.rid || '',
    active: e.active !== false,
    maxBitrate: e.maxBitrate,
    maxFramerate: e.maxFramerate,
    scaleResolutionDownBy: e.scaleResolutionDownBy,
  }));
}

/** Opus below this is not speech any more: a lower cap is raised to it. */
const MIN_AUDIO_BPS = 6000;

/**
 * Applies the server's `audio_rate` to the audio sender whose transceiver has `mid`: caps its
 * encoding's maxBitrate (Chromium passes it to Opus as its target) or, with no valid number,
 * removes the cap. Resolves with the maxBitrate afterwards (undefined: the browser's default),
 * or null when there is no such sender.
 * @param {RTCPeerConnection} pc
 * @param {string} mid
 * @param {unknown} maxBitrate  bit/s; anything but a positive number lifts the cap
 * @returns {Promise<number|undefined|null>}
 */
export async function applyAudioRate(pc, mid, maxBitrate) {
  const transceiver = pc.getTransceivers().find((tr) => tr.mid === mid);
  if (!transceiver || !transceiver.sender || transceiver.sender.track?.kind === 'video') {
    console.warn(`kham: audio_rate for mid ${mid}: no such audio sender`);
    return null;
  }
  const sender = transceiver.sender;
  const params = sender.getParameters();
  const enc = params.encodings && params.encodings[0];
  if (!enc) return null;
  const cap = positive(maxBitrate);
  const want = cap === undefined ? undefined : Math.max(MIN_AUDIO_BPS, Math.round(cap));
  if (enc.maxBitrate !== want) {
    if (want === undefined) delete enc.maxBitrate;
    else enc.maxBitrate = want;
    await sender.setParameters(params);
  }
  return sender.getParameters().encodings?.[0]?.maxBitrate;
}

/**
 * `sdp` with the packet time asked for in each audio m-section whose mid is in `ptimeByMid`
 * (`a=ptime:N`, which Chromium's Opus encoder follows when it is in the remote description:
 * 40 or 60 ms of speech a packet, a third of the packets and their headers), and without one
 * elsewhere (the browser's default, 20). Other lines are kept byte for byte.
 * @param {string} sdp
 * @param {Map<string, number>} ptimeByMid
 * @returns {string}
 */
export function withPacketTime(sdp, ptimeByMid) {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  /** @type {string[]} */
  const out = [];
  /** @type {string[]} */
  let section = [];
  const flush = () => {
    if (section.length === 0) return;
    const audio = section[0].startsWith('m=audio ');
    const midLine = section.find((l) => l.startsWith('a=mid:'));
    const ptime = audio && midLine ? ptimeByMid.get(midLine.slice(6)) : undefined;
    const kept = audio ? section.filter((l) => !l.startsWith('a=ptime:')) : section;
    // Attributes come after the m-section's c= and b= lines.
    const at = kept.findIndex((l, i) => i > 0 && l.startsWith('a='));
    if (ptime && ptime > 20) kept.splice(at > 0 ? at : kept.length, 0, `a=ptime:${ptime}`);
    out.push(...kept);
    section = [];
  };
  for (const line of lines) {
    if (line.startsWith('m=')) flush();
    if (line.startsWith('m=') || section.length > 0) section.push(line);
    else out.push(line);
  }
  flush();
  return out.join(eol);
}
