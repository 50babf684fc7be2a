// Renders the node totals and the rooms table from an update.
import { byId, h } from '/app/dom.js';
import { t, roleLabel } from '/app/i18n.js';

/** @typedef {import('./api.js').NodeLoad} NodeLoad */
/** @typedef {import('./api.js').RoomRow} RoomRow */

/** A quality badge; null means nothing measured yet. @param {string|null} q */
export function badge(q) {
  const key = q || 'unknown';
  return h('span', { class: `badge q-${key}`, 'data-testid': 'quality', 'data-quality': key }, [t(`quality.${key}`)]);
}

/** "1 h 05 min", "3 min 20 s", "12 s". @param {number} s */
export function duration(s) {
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = Math.floor(s % 60);
  if (hh) return `${hh} h ${String(mm).padStart(2, '0')} min`;
  if (mm) return `${mm} min ${String(ss).padStart(2, '0')} s`;
  return `${ss} s`;
}

/** @param {number} v */
const num = (v) => (Math.round(v * 10) / 10).toLocaleString();

/** @param {NodeLoad} n */
export function renderNode(n) {
  /** @type {[string, string, string][]} */
  const items = [
    ['cpu', 'dash.node.cpu', n.cpu_percent === null ? t('dash.none') : `${num(n.cpu_percent)} % / ${n.cores}`],
    ['rooms', 'dash.node.rooms', String(n.rooms)],
    ['participants', 'dash.node.participants', String(n.participants)],
    ['lobby', 'dash.node.lobby', String(n.lobby)],
    ['tracks', 'dash.node.tracks', String(n.tracks)],
    ['pps', 'dash.node.pps', `${num(n.pps_in)} / ${num(n.pps_out)}`],
    ['kbps', 'dash.node.kbps', `${num(n.kbps_in)} / ${num(n.kbps_out)}`],
    ['dropped', 'dash.node.dropped', String(n.udp_dropped + n.udp_send_dropped)],
    ['uptime', 'dash.node.uptime', duration(n.uptime_s)],
  ];
  if (n.draining) items.push(['draining', 'dash.node.draining', '⚠']);
  byId('node').replaceChildren(
    ...items.map(([id, key, value]) =>
      h('div', { 'data-testid': `node-${id}` }, [h('dt', {}, [t(key)]), h('dd', {}, [value])])),
  );
}

/** "Bác sĩ 1, Trạm y tế 1". @param {Record<string, number>} byRole */
function people(byRole) {
  const parts = Object.entries(byRole).filter(([, n]) => n > 0).map(([r, n]) => `${roleLabel(r)} ${n}`);
  return parts.length ? parts.join(', ') : t('dash.none');
}

/**
 * @param {RoomRow[]} rooms
 * @param {string|null} selected
 * @param {(room: string) => void} onOpen
 */
export function renderRooms(rooms, selected, onOpen) {
  byId('rooms-count').textContent = `(${rooms.length})`;
  byId('rooms-empty').hidden = rooms.length > 0;
  byId('rooms-table').hidden = rooms.length === 0;
  byId('rooms-body').replaceChildren(...rooms.map((r) => {
    const open = h('button', {
      type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'open-room',
      'aria-label': t('dash.open.label', { room: r.room }),
    }, [t('dash.open')]);
    open.addEventListener('click', () => onOpen(r.room));
    return h('tr', {
      'data-testid': 'room-row', 'data-room': r.room, class: r.room === selected ? 'selected' : undefined,
    }, [
      h('td', {}, [h('code', {}, [r.room])]),
      h('td', {}, [duration(r.age_s)]),
      h('td', { 'data-testid': 'room-people' }, [people(r.participants)]),
      h('td', { 'data-testid': 'room-lobby' }, [String(r.lobby)]),
      h('td', { 'data-testid': 'room-kbps-in' }, [num(r.kbps_in)]),
      h('td', { 'data-testid': 'room-kbps-out' }, [num(r.kbps_out)]),
      h('td', {}, [badge(r.quality)]),
      h('td', {}, [open]),
    ]);
  }));
}
