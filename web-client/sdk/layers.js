// Dynacast for the kham SDK: the server's `publish_layers` message says which simulcast
// encodings of this client's own video some subscriber needs (crates/proto/PROTOCOL.md). The
// others are switched off with RTCRtpSender.setParameters, so a weak uplink carries only what
// is watched.

/**
 * @typedef {object} LayerWish
 * @property {string} rid     simulcast encoding id (q, h or f)
 * @property {boolean} active
 */

/**
 * Sets `active` on the encodings of the sender whose transceiver has `mid`; encodings whose rid
 * is not listed keep their state (setParameters is only called when something changes).
 * Resolves with every encoding's rid and `active` flag afterwards, or null when there is no
 * such sender.
 * @param {RTCPeerConnection} pc
 * @param {string} mid
 * @param {LayerWish[]} layers
 * @returns {Promise<{rid: string, active: boolean}[]|null>}
 */
export async function applyPublishLayers(pc, mid, layers) {
  const transceiver = pc.getTransceivers().find((tr) => tr.mid === mid);
  if (!transceiver || !transceiver.sender) {
    console.warn(`kham: publish_layers for mid ${mid}: no such sender`);
    return null;
  }
  const sender = transceiver.sender;
  /** @type {Map<string, boolean>} */
  const wanted = new Map();
  for (const l of layers) {
    if (l && typeof l.rid === 'string' && typeof l.active === 'boolean') wanted.set(l.rid, l.active);
  }
  const params = sender.getParameters();
  const encodings = params.encodings || [];
  let changed = false;
  for (const enc of encodings) {
    if (enc.rid === undefined || !wanted.has(enc.rid)) continue;
    const active = /** @type {boolean} */ (wanted.get(enc.rid));
    if (enc.active !== active) {
      enc.active = active;
      changed = true;
    }
  }
  if (changed) await sender.setParameters(params);
  return encodings.map((e) => ({ rid: e.rid || '', active: e.active !== false }));
}
