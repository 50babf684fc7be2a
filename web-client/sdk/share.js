// Screen share (issue 16): a second video track with content priority. The server is told
// which mid carries it in the `offer` (`screen: [mid]`, crates/proto/PROTOCOL.md): it buys the
// share before camera video for every subscriber, and gives up its frame rate before its
// resolution. Subscribers see `screen: true` in the track list and show it large.

/**
 * One full-resolution encoding with three temporal layers, not simulcast: a PACS image or a
 * document is unreadable at a quarter of its size, so the server never needs a smaller copy,
 * only fewer frames (it drops temporal layers, L1T3, towards a thin subscriber). 1.2 Mbit/s is
 * enough for a static 1080p screen at a few frames a second.
 */
export const SHARE_ENCODING = Object.freeze({ maxBitrate: 1_200_000, scalabilityMode: 'L1T3' });

/**
 * Adds (or re-uses, after a stopped share) the send transceiver of a screen track and sets it
 * to keep resolution: `contentHint = 'detail'` tells the encoder the content is fine detail
 * (text, edges), `degradationPreference = 'maintain-resolution'` makes a congested or
 * CPU-bound encoder drop frames rather than pixels (ignored where unsupported).
 * @param {RTCPeerConnection} pc
 * @param {MediaStreamTrack} track
 * @param {RTCRtpTransceiver|null} reuse
 * @returns {Promise<RTCRtpTransceiver>}
 */
export async function startShareSender(pc, track, reuse) {
  if ('contentHint' in track) track.contentHint = 'detail';
  let tr = reuse;
  if (tr && tr.currentDirection !== 'stopped') {
    await tr.sender.replaceTrack(track);
    tr.direction = 'sendonly';
  } else {
    tr = pc.addTransceiver(track, { direction: 'sendonly', sendEncodings: [{ ...SHARE_ENCODING }] });
  }
  await preferResolution(tr.sender);
  return tr;
}

/** @param {RTCRtpSender} sender */
async function preferResolution(sender) {
  try {
    const p = sender.getParameters();
    /** @type {any} */ (p).degradationPreference = 'maintain-resolution';
    await sender.setParameters(p);
  } catch (err) {
    console.warn('kham: maintain-resolution not applied to the share', err);
  }
}

/**
 * Stops sending the share (the transceiver is kept for a later share, `inactive`).
 * @param {RTCRtpTransceiver} tr
 */
export async function stopShareSender(tr) {
  await tr.sender.replaceTrack(null);
  if (tr.currentDirection !== 'stopped') tr.direction = 'inactive';
}
