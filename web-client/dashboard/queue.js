// The specialist queue on the dashboard: per specialty the requests in the queue, the oldest
// wait and the available doctors; the wait-time distribution of the last hour. Polled from
// /api/admin/queue (no names, no notes).
import { byId, h } from '/app/dom.js';
import { t } from '/app/i18n.js';
import { call } from './api.js';

/**
 * @typedef {object} QueueStats
 * @property {Record<string, {waiting: number, oldest_wait_ms: number, doctors_available: number}>} specialties
 * @property {number} served_last_hour
 * @property {{le_s: number|null, count: number}[]} wait_buckets
 */

/** @type {QueueStats|null} */
let last = null;
/** @type {ReturnType<typeof setInterval>|null} */
let timer = null;

/** @param {number} ms */
function minutes(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function renderQueue() {
  if (!last) return;
  const rows = Object.entries(last.specialties);
  const total = rows.reduce((n, [, v]) => n + v.waiting, 0);
  byId('queue-total').textContent = t('dash.queue.total', { n: total });
  byId('queue-total').dataset.count = String(total);
  byId('queue-body').replaceChildren(...rows.map(([name, v]) => {
    const key = `specialty.${name}`;
    const label = t(key) === key ? name : t(key);
    return h('tr', { 'data-specialty': name }, [
      h('td', {}, [label]),
      h('td', { 'data-testid': 'queue-length' }, [String(v.waiting)]),
      h('td', {}, [v.waiting ? minutes(v.oldest_wait_ms) : '–']),
      h('td', { 'data-testid': 'queue-doctors' }, [String(v.doctors_available)]),
    ]);
  }));
  byId('queue-served').textContent = t('dash.queue.served', { n: last.served_last_hour });
  const most = Math.max(1, ...last.wait_buckets.map((b) => b.count));
  let lower = 0;
  byId('queue-dist').replaceChildren(...last.wait_buckets.map((b) => {
    const label = b.le_s === null ? t('dash.queue.over', { m: lower / 60 }) : t('dash.queue.under', { m: b.le_s / 60 });
    if (b.le_s !== null) lower = b.le_s;
    const bar = h('span', { class: 'bar' });
    bar.style.width = `${Math.round((100 * b.count) / most)}%`;
    return h('li', {}, [h('span', { class: 'bar-label' }, [label]), bar, h('span', { class: 'bar-count' }, [String(b.count)])]);
  }));
}

/** Starts polling with this admin token (every 2 s). @param {string} token */
export function startQueue(token) {
  stopQueue();
  const poll = async () => {
    try {
      last = /** @type {QueueStats} */ (await call(token, '/api/admin/queue'));
      renderQueue();
    } catch {
      // the event stream's handler deals with a refused or lost server
    }
  };
  poll();
  timer = setInterval(poll, 2000);
}

export function stopQueue() {
  if (timer) clearInterval(timer);
  timer = null;
}
