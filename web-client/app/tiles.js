// The call grid: one tile per participant (own tile first), each with video, name, role,
// connection quality and mute indicators. Remote audio plays through the same <video> element
// (one MediaStream per participant), which is never muted or paused: a paused remote video is
// only made invisible (visibility, so its size is still reported to the server).
import { byId, h, initials, svg } from './dom.js';
import { ICONS } from './icons.js';
import { t, roleLabel } from './i18n.js';
import { attachStream } from './media.js';
import { qualityOf, qualityBars, forgetQuality } from './quality.js';
import { pausedReason, pausedPanel, forgetPaused } from './paused.js';

/** @typedef {import('../sdk/kham.js').Participant} Participant */

/**
 * @typedef {object} Tile
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {Participant} participant
 * @property {boolean} self
 * @property {MediaStream|null} stream
 */

/** @type {Map<string, Tile>} */
const tiles = new Map();
/** Called when the doctor presses "remove" on a tile; null hides the buttons. @type {((p: Participant) => void)|null} */
let onRemove = null;

/**
 * Told about remote <video> elements as tiles come and go (adaptive stream reporting).
 * @typedef {object} VideoWatcher
 * @property {(participantId: string, video: HTMLVideoElement) => void} add
 * @property {(video: HTMLVideoElement) => void} remove
 */
/** @type {VideoWatcher|null} */
let watcher = null;

/** @param {VideoWatcher} w */
export function setVideoWatcher(w) {
  watcher = w;
  for (const [id, tile] of tiles) if (!tile.self) w.add(id, tile.video);
}

/** @param {((p: Participant) => void)|null} fn */
export function setRemoveHandler(fn) {
  onRemove = fn;
  for (const tile of tiles.values()) draw(tile);
}

/**
 * Adds or updates the own tile (muted local preview, mirrored).
 * @param {Participant} me
 * @param {MediaStream|null} stream
 */
export function setSelf(me, stream) {
  const tile = ensure(me, true);
  tile.stream = stream;
  attachStream(tile.video, stream);
  draw(tile);
}

/** Adds a remote participant's tile (no media yet). @param {Participant} p */
export function addParticipant(p) {
  const tile = ensure(p, false);
  draw(tile);
}

/** New name/mute state. @param {Participant} p */
export function updateParticipant(p) {
  const tile = tiles.get(p.id);
  if (!tile) return;
  tile.participant = p;
  draw(tile);
}

/** @param {string} id */
export function removeParticipant(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  if (watcher && !tile.self) watcher.remove(tile.video);
  tile.video.srcObject = null;
  tile.el.remove();
  tiles.delete(id);
  forgetQuality(id);
  forgetPaused(id);
  layout();
}

/**
 * Shows a remote participant's current tracks.
 * @param {string} id
 * @param {MediaStream} stream
 */
export function setRemoteStream(id, stream) {
  const tile = tiles.get(id);
  if (!tile) return;
  tile.stream = stream;
  attachStream(tile.video, stream.getTracks().length ? stream : null);
  draw(tile);
}

/** Redraws every tile: after a language switch, new video states or quality scores. */
export function relabelTiles() {
  for (const tile of tiles.values()) draw(tile);
}

export function clearTiles() {
  for (const id of [...tiles.keys()]) removeParticipant(id);
}

/** @param {Participant} p @param {boolean} self */
function ensure(p, self) {
  let tile = tiles.get(p.id);
  if (tile) {
    tile.participant = p;
    return tile;
  }
  const video = /** @type {HTMLVideoElement} */ (h('video', {
    autoplay: true, playsinline: true,
    // An observer never sends media: its tile only shows who is watching.
    'data-testid': self ? 'self-video' : p.role === 'observer' ? 'observer-video' : 'remote-video',
    class: self ? 'mirror' : undefined,
  }));
  // Own audio must never play back (echo); remote audio must play.
  video.muted = self;
  const el = h('div', { class: self ? 'tile self' : 'tile', role: 'group', 'data-participant-id': p.id, 'data-testid': 'tile' });
  el.append(video);
  tile = { el, video, participant: p, self, stream: null };
  tiles.set(p.id, tile);
  const grid = byId('grid');
  if (self) grid.prepend(el);
  else grid.append(el);
  layout();
  if (watcher && !self) watcher.add(p.id, video);
  return tile;
}

/** @param {Tile} tile */
function draw(tile) {
  const p = tile.participant;
  const hasVideo = !!tile.stream && tile.stream.getVideoTracks().length > 0;
  const videoOff = p.video_muted || !hasVideo;
  const paused = tile.self ? null : pausedReason(p);
  tile.el.classList.toggle('video-off', videoOff);
  tile.el.classList.toggle('video-paused', !!paused);
  tile.el.dataset.audioMuted = String(p.audio_muted);
  tile.el.dataset.videoMuted = String(p.video_muted);
  // The participant's connection is being restored: keep the tile, say so.
  tile.el.dataset.reconnecting = String(!!p.reconnecting);
  const quality = qualityOf(p.id);
  if (quality) tile.el.dataset.quality = quality;
  else delete tile.el.dataset.quality;
  tile.el.setAttribute('aria-label', `${p.name}, ${roleLabel(p.role)}`);

  const flags = [];
  if (p.audio_muted) flags.push(h('span', { class: 'flag', 'data-testid': 'audio-muted', title: t('muted.audio') }, [svg(ICONS.micOff)]));
  if (p.video_muted) flags.push(h('span', { class: 'flag', 'data-testid': 'video-muted', title: t('muted.video') }, [svg(ICONS.camOff)]));
  if (p.reconnecting) flags.push(h('span', { class: 'flag flag-reconnecting', 'data-testid': 'tile-reconnecting' }, [t('tile.reconnecting')]));
  const name = tile.self ? `${p.name} (${t('you')})` : p.name;
  const label = h('div', { class: 'tile-label' }, [
    quality ? qualityBars(quality) : null,
    h('span', { class: 'tile-name', 'data-testid': 'tile-name' }, [name]),
    h('span', { class: `tile-role role-${p.role}`, 'data-testid': 'tile-role' }, [roleLabel(p.role)]),
    ...flags,
  ]);
  const avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' }, [h('span', {}, [initials(p.name)])]);
  const parts = paused ? [pausedPanel(p, paused), label] : [avatar, label];
  if (!tile.self && onRemove) {
    const btn = h('button', {
      type: 'button', class: 'tile-remove', 'data-testid': 'remove',
      'aria-label': t('remove.label', { name: p.name }), title: t('remove.label', { name: p.name }),
    }, [svg(ICONS.remove)]);
    const handler = onRemove;
    btn.addEventListener('click', () => handler(tile.participant));
    parts.push(btn);
  }
  // Keep the <video> element (it is playing); replace the rest.
  for (const child of [...tile.el.children]) if (child !== tile.video) child.remove();
  tile.el.append(...parts);
}

function layout() {
  const grid = byId('grid');
  const remotes = [...tiles.values()].filter((tile) => !tile.self).length;
  grid.dataset.remotes = String(remotes);
  grid.classList.toggle('many', remotes > 4);
  byId('alone').hidden = remotes > 0;
}
