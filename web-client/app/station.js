// The station's page (/queue): ask for a consult in a specialty, see the place in the queue and
// the estimated wait, cancel. A pairing hands over to the call (main.js).
import { byId, h } from './dom.js';
import { t } from './i18n.js';

/** @typedef {import('./queue-socket.js').QueueSocket} QueueSocket */

/** What the page shows now, so a language switch can redraw it. */
const view = {
  /** @type {string[]} */
  specialties: [],
  /** @type {any} */
  queued: null,
  /** @type {string} */
  notice: '',
  offline: false,
};

/** Draws the page from `view`. */
export function renderStation() {
  const select = /** @type {HTMLSelectElement} */ (byId('queue-specialty'));
  const chosen = select.value;
  select.replaceChildren(...view.specialties.map((s) => h('option', { value: s }, [specialtyLabel(s)])));
  if (chosen) select.value = chosen;
  const q = view.queued;
  byId('queue-form').hidden = !!q;
  byId('queue-status').hidden = !q;
  if (q) {
    byId('queue-status-text').textContent = q.stage === 'waiting'
      ? t('queue.waiting', { specialty: specialtyLabel(q.specialty) })
      : t('queue.connecting');
    byId('queue-position').textContent = q.stage === 'waiting' ? String(q.position) : '–';
    const minutes = Math.round(q.eta_ms / 60000);
    byId('queue-eta').textContent = q.stage !== 'waiting' ? '' : minutes < 1 ? t('queue.eta_soon') : t('queue.eta', { minutes });
    /** @type {HTMLButtonElement} */ (byId('queue-cancel')).disabled = q.stage !== 'waiting';
  }
  const notice = view.offline ? t('queue.offline') : view.notice;
  byId('queue-notice').hidden = !notice;
  byId('queue-notice').textContent = notice;
}

/** @param {string} s */
export function specialtyLabel(s) {
  const key = `specialty.${s}`;
  const label = t(key);
  return label === key ? s : label;
}

/**
 * @param {QueueSocket} sock
 * @param {{onPaired: (msg: {room: string, token: string, request_id: number}) => void}} hooks
 */
export function startStation(sock, hooks) {
  const button = /** @type {HTMLButtonElement} */ (byId('queue-request'));
  sock.addEventListener('hello', (ev) => {
    view.specialties = /** @type {CustomEvent} */ (ev).detail.specialties;
    button.disabled = false;
    renderStation();
  });
  sock.addEventListener('queued', (ev) => {
    view.queued = /** @type {CustomEvent} */ (ev).detail;
    view.notice = '';
    renderStation();
  });
  sock.addEventListener('left', (ev) => {
    const { reason, message } = /** @type {CustomEvent} */ (ev).detail;
    view.queued = null;
    const key = `queue.left.${reason}`;
    view.notice = t(key) === key ? message : t(key);
    button.disabled = false;
    renderStation();
  });
  sock.addEventListener('error', (ev) => {
    const { message } = /** @type {CustomEvent} */ (ev).detail;
    view.notice = message;
    button.disabled = false;
    renderStation();
  });
  sock.addEventListener('offline', () => { view.offline = true; renderStation(); });
  sock.addEventListener('online', () => { view.offline = false; renderStation(); });
  sock.addEventListener('paired', (ev) => hooks.onPaired(/** @type {CustomEvent} */ (ev).detail));
  byId('queue-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    button.disabled = true;
    const patient = /** @type {HTMLInputElement} */ (byId('queue-patient')).value.trim();
    sock.send({
      type: 'request',
      specialty: /** @type {HTMLSelectElement} */ (byId('queue-specialty')).value,
      urgency: /** @type {HTMLInputElement} */ (byId('queue-urgent')).checked ? 'urgent' : 'routine',
      note: /** @type {HTMLTextAreaElement} */ (byId('queue-note')).value.trim(),
      ...(patient ? { patient_name: patient } : {}),
    });
  });
  byId('queue-cancel').addEventListener('click', () => {
    sock.send({ type: 'cancel' });
    view.queued = null;
    button.disabled = false;
    renderStation();
  });
}
