// Screen share on the call page: the "share screen" button (getDisplayMedia, sent through the
// SDK with content priority) and the large tile showing a remote participant's share.
import { byId, h } from './dom.js';
import { t } from './i18n.js';
import { attachStream } from './media.js';
import { makeToggle, ICONS } from './controls.js';
import { showToast } from './toast.js';

/** @typedef {import('../sdk/kham.js').KhamClient} KhamClient */

/**
 * The share button: pressed while the own screen is shared. Stopping comes from the button or
 * from the browser's own "stop sharing" (the track ends).
 * @param {KhamClient} client
 */
export function makeShareToggle(client) {
  /** @type {MediaStreamTrack|null} */
  let track = null;
  const stop = () => {
    if (!track) return;
    const tr = track;
    track = null;
    tr.stop();
    toggle.set(false);
    client.stopScreenShare().catch(() => {});
  };
  const toggle = makeToggle({
    testid: 'screen-share', iconOn: ICONS.share, iconOff: ICONS.share,
    labelOn: 'share.start', labelOff: 'share.stop', hint: 'share.hint', pressedClass: 'ctl-on',
    onChange: async (sharing) => {
      if (!sharing) return stop();
      try {
        const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
        track = stream.getVideoTracks()[0];
        if (!track) throw new Error('no video track');
        track.addEventListener('ended', stop);
        await client.shareScreen(track);
      } catch (err) {
        if (track) track.stop();
        track = null;
        toggle.set(false);
        showToast(t('share.failed', { message: String(err && /** @type {any} */ (err).message || err) }));
      }
    },
  });
  return toggle;
}

/** Shares shown now, by participant. @type {Map<string, HTMLElement>} */
const shown = new Map();

/**
 * Shows (or, with a null stream, removes) a participant's screen share in the large stage.
 * @param {string} participantId
 * @param {string} name
 * @param {MediaStream|null} stream
 * @param {string} [mid]  the share's receive mid (its `video_state` hides a stopped share)
 */
export function setRemoteShare(participantId, name, stream, mid) {
  const stage = byId('share-stage');
  let el = shown.get(participantId);
  if (!stream) {
    if (el) el.remove();
    shown.delete(participantId);
  } else {
    if (!el) {
      const video = h('video', { autoplay: '', playsinline: '', muted: '' });
      el = h('figure', { class: 'share', 'data-testid': 'remote-share', 'data-participant-id': participantId }, [
        video, h('figcaption', {}, [t('share.label', { name })]),
      ]);
      shown.set(participantId, el);
      stage.append(el);
    }
    if (mid) el.dataset.mid = mid;
    const video = /** @type {HTMLVideoElement} */ (el.querySelector('video'));
    video.muted = true;
    attachStream(video, stream);
  }
  redrawStage();
}

function redrawStage() {
  byId('share-stage').hidden = ![...shown.values()].some((el) => !el.hidden);
}

/**
 * A share whose publisher stopped it sends nothing: the server reports it `no_video` and its
 * tile is hidden until frames come again (the track itself stays until the next renegotiation).
 * @param {import('../sdk/kham.js').VideoState[]} states
 */
export function setShareStates(states) {
  for (const el of shown.values()) {
    const s = states.find((v) => v.mid === el.dataset.mid);
    if (s) el.hidden = s.paused && s.reason === 'no_video';
  }
  redrawStage();
}

/** Removes every share (the call ended). */
export function clearShares() {
  for (const id of [...shown.keys()]) setRemoteShare(id, '', null);
}
