// The room view: each participant's quality, figures and sparklines of the last minutes.
import { byId, h } from '/app/dom.js';
import { t, roleLabel } from '/app/i18n.js';
import { badge } from './tables.js';
import { sparkline } from './sparkline.js';

/** @typedef {import('./api.js').RoomDetail} RoomDetail */
/** @typedef {import('./api.js').Participant} Participant */
/** @typedef {import('./api.js').Sample} Sample */

/** How many one-second samples a sparkline shows (5 minutes). */
const KEEP = 300;

/** Per participant id: the samples drawn so far. @type {Map<string, Sample[]>} */
const history = new Map();

/** Starts a room's history from the API's (on opening the room). @param {Record<string, Sample[]>} h */
export function resetHistory(h) {
  history.clear();
  for (const [id, s] of Object.entries(h || {})) history.set(id, s.slice(-KEEP));
}

/** Appends this update's figures. @param {RoomDetail} room @param {number} atMs */
function record(room, atMs) {
  const at = Math.floor(atMs / 1000);
  for (const p of room.participants) {
    if (p.status !== 'admitted') continue;
    const s = history.get(p.id) || [];
    if (s.length && s[s.length - 1][0] >= at) continue;
    const losses = [p.loss_in_percent, p.loss_out_percent].filter((v) => typeof v === 'number');
    s.push([at, p.kbps_in, p.kbps_out, losses.length ? Math.max(...losses) : null]);
    if (s.length > KEEP) s.splice(0, s.length - KEEP);
    history.set(p.id, s);
  }
}

/** @param {number|null} v @param {string} [unit] */
const fmt = (v, unit = '') => (v === null || v === undefined ? t('dash.none') : `${Math.round(v * 10) / 10}${unit}`);

/** @param {Participant} p @param {Map<string, string>} names */
function layers(p, names) {
  if (p.audio_only) return t('dash.audio_only');
  if (!p.layers.length) return t('dash.none');
  return p.layers.map((l) => `${names.get(l.publisher) || l.publisher}: ${l.layer === null ? '–' : `L${l.layer}`}`).join(', ');
}

/**
 * Draws the room. `room` null means it is gone.
 * @param {string} id
 * @param {RoomDetail|null} room
 * @param {number} atMs
 * @param {{onRemove: (p: Participant) => void}} actions
 */
export function renderRoom(id, room, atMs, actions) {
  byId('room').hidden = false;
  byId('room-title').textContent = t('dash.room.title', { room: id });
  byId('room-gone').hidden = room !== null;
  byId('participants-table').hidden = room === null;
  byId('close-room').hidden = room === null;
  byId('room-quality').replaceChildren(room ? badge(room.quality) : '');
  if (!room) return;
  record(room, atMs);
  const names = new Map(room.participants.map((p) => [p.id, p.name]));
  byId('participants-body').replaceChildren(...room.participants.map((p) => {
    const s = history.get(p.id) || [];
    const remove = h('button', {
      type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'remove-participant',
      'aria-label': t('dash.remove.label', { name: p.name }),
    }, [t('dash.remove')]);
    remove.addEventListener('click', () => actions.onRemove(p));
    const losses = [p.loss_in_percent, p.loss_out_percent].filter((v) => typeof v === 'number');
    return h('tr', { 'data-testid': 'participant-row', 'data-participant-id': p.id, 'data-status': p.status }, [
      h('td', { 'data-testid': 'participant-name' }, [p.name, p.status === 'waiting' ? h('span', { class: 'muted' }, [` (${t('dash.waiting')})`]) : null]),
      h('td', {}, [roleLabel(p.role)]),
      h('td', {}, [p.status === 'admitted' ? badge(p.quality) : t('dash.none')]),
      h('td', {}, [fmt(p.rtt_ms)]),
      h('td', { title: `${fmt(p.loss_in_percent)} / ${fmt(p.loss_out_percent)}` }, [losses.length ? fmt(Math.max(...losses)) : t('dash.none')]),
      h('td', {}, [p.estimate_kbps === null ? t('dash.none') : fmt(p.estimate_kbps, ' kbit/s')]),
      h('td', {}, [layers(p, names)]),
      h('td', {}, [p.client]),
      h('td', { 'data-testid': 'spark-bitrate' }, [s.length ? sparkline([
        { values: s.map((x) => x[1]), cls: 'in' },
        { values: s.map((x) => x[2]), cls: 'out' },
      ], t('chart.bitrate'), 50) : t('dash.none')]),
      h('td', { 'data-testid': 'spark-loss' }, [s.length ? sparkline([
        { values: s.map((x) => x[3]), cls: 'loss' },
      ], t('chart.loss'), 5) : t('dash.none')]),
      h('td', {}, [remove]),
    ]);
  }));
}

/** Hides the room view. */
export function hideRoom() {
  byId('room').hidden = true;
  history.clear();
}
