// Remote videos the server is not forwarding (its `video_state` message) and the own "audio
// only" choice: such a tile hides its video (the sound goes on) and shows the person's initials,
// name and why there is no picture.
import { h, initials } from './dom.js';
import { t } from './i18n.js';

/** @typedef {import('../sdk/kham.js').VideoState} VideoState */
/** @typedef {import('../sdk/kham.js').Participant} Participant */

/** Why each participant's video is paused, per the server; absent when it is forwarded. @type {Map<string, string>} */
let serverPaused = new Map();
/** The user chose audio only: every remote video shows the audio-only note at once. */
let audioOnly = false;

/**
 * Takes the full `video_state` list.
 * @param {VideoState[]} states
 * @param {(mid: string) => string|null} ownerOfMid  participant of a mid, for states without one
 */
export function setVideoStates(states, ownerOfMid) {
  const next = new Map();
  for (const s of states) {
    const owner = s.participant || ownerOfMid(String(s.mid));
    if (owner && s.paused) next.set(owner, s.reason || 'other');
  }
  serverPaused = next;
}

/** @param {boolean} on */
export function setAudioOnlyView(on) {
  audioOnly = on;
}

/** @param {string} id */
export function forgetPaused(id) {
  serverPaused.delete(id);
}

/**
 * Why a remote participant's video is not shown now, or null when it is.
 * @param {Participant} p
 * @returns {string|null}
 */
export function pausedReason(p) {
  // Observers send no video: nothing to pause.
  if (p.role === 'observer') return null;
  if (audioOnly) return 'audio_only';
  return serverPaused.get(p.id) || null;
}

const NOTES = new Set(['bandwidth', 'audio_only', 'hidden', 'no_video']);

/**
 * The panel shown instead of a paused video.
 * @param {Participant} p
 * @param {string} reason
 */
export function pausedPanel(p, reason) {
  // A camera switched off is said as such, not as "no video yet".
  const key = reason === 'no_video' && p.video_muted ? 'muted.video' : NOTES.has(reason) ? `paused.${reason}` : 'paused.other';
  return h('div', { class: 'paused', 'data-testid': 'video-paused', 'data-reason': reason }, [
    h('span', { class: 'paused-avatar', 'aria-hidden': 'true' }, [initials(p.name)]),
    h('span', { class: 'paused-name' }, [p.name]),
    h('span', { class: 'paused-note', 'data-testid': 'video-paused-note' }, [t(key)]),
  ]);
}
