// The doctor's duty page (/duty): available or busy, the live queue of the doctor's
// specialties, "take the next request" (or, with the offer policy, accept/decline an offer).
// A pairing hands over to the call (main.js); after it the page comes back here.
import { byId, h } from './dom.js';
import { t } from './i18n.js';
import { specialtyLabel } from './station.js';

/** @typedef {import('./queue-socket.js').QueueSocket} QueueSocket */

/** Whether to come back available after a call (this tab). */
const RETURN_KEY = 'kham.duty.return';

const view = {
  /** @type {any} */
  board: null,
  /** @type {any} */
  offer: null,
  notice: '',
};

export function renderDuty() {
  const b = view.board;
  const available = /** @type {HTMLInputElement} */ (byId('duty-available'));
  const take = /** @type {HTMLButtonElement} */ (byId('queue-take'));
  const list = byId('duty-list');
  if (!b) return;
  available.disabled = false;
  available.checked = b.available;
  const entries = /** @type {any[]} */ (b.entries);
  take.disabled = !b.available || !entries.some((e) => e.stage === 'waiting');
  byId('duty-empty').hidden = entries.length > 0;
  list.replaceChildren(...entries.map((e) => {
    const minutes = Math.floor(e.waited_ms / 60000);
    return h('li', { 'data-testid': 'queue-entry', 'data-urgent': String(e.urgency === 'urgent'), 'data-request-id': String(e.request_id), 'data-stage': e.stage }, [
      h('span', { class: 'badge badge-urgency' }, [t(`urgency.${e.urgency}`)]),
      h('span', { class: 'badge' }, [specialtyLabel(e.specialty)]),
      h('strong', {}, [e.station]),
      h('div', { class: 'meta' }, [
        minutes < 1 ? t('duty.waited_now') : t('duty.waited', { minutes }),
        e.stage !== 'waiting' ? ` · ${t(`duty.stage.${e.stage}`)}` : '',
      ]),
      e.patient_name ? h('div', { class: 'meta' }, [t('duty.patient', { name: e.patient_name })]) : null,
      e.note ? h('p', { class: 'note' }, [e.note]) : null,
    ]);
  }));
  const counts = Object.entries(b.doctors_available || {}).map(([s, n]) => `${specialtyLabel(s)} ${n}`);
  byId('duty-doctors').textContent = counts.length ? t('duty.doctors', { list: counts.join(', ') }) : '';
  byId('duty-offer').hidden = !view.offer;
  if (view.offer) {
    const e = view.offer.entry;
    byId('duty-offer-text').textContent = t('duty.offer', {
      urgency: t(`urgency.${e.urgency}`), specialty: specialtyLabel(e.specialty), station: e.station,
    });
  }
}

/**
 * @param {QueueSocket} sock
 * @param {{onPaired: (msg: {room: string, token: string, request_id: number}) => void, onError: (message: string) => void}} hooks
 */
export function startDuty(sock, hooks) {
  const available = /** @type {HTMLInputElement} */ (byId('duty-available'));
  const back = /** @type {HTMLInputElement} */ (byId('duty-return'));
  let comeBack = false;
  try {
    back.checked = sessionStorage.getItem(RETURN_KEY) !== 'no';
    comeBack = sessionStorage.getItem('kham.duty.after_call') === '1';
    sessionStorage.removeItem('kham.duty.after_call');
  } catch {
    // defaults
  }
  back.addEventListener('change', () => {
    try {
      sessionStorage.setItem(RETURN_KEY, back.checked ? 'yes' : 'no');
    } catch {
      // this page only
    }
  });
  sock.addEventListener('hello', () => {
    // Back from a call: on duty again unless the doctor chose otherwise.
    if (comeBack && back.checked) sock.send({ type: 'available', available: true });
    comeBack = false;
  });
  sock.addEventListener('board', (ev) => {
    view.board = /** @type {CustomEvent} */ (ev).detail;
    // An offer that was answered, lapsed or went to someone else is gone.
    if (view.offer && !view.board.entries.some((/** @type {any} */ e) => e.request_id === view.offer.entry.request_id && e.stage === 'offered')) {
      view.offer = null;
    }
    renderDuty();
  });
  sock.addEventListener('offer', (ev) => {
    view.offer = /** @type {CustomEvent} */ (ev).detail;
    renderDuty();
  });
  sock.addEventListener('error', (ev) => {
    hooks.onError(/** @type {CustomEvent} */ (ev).detail.message);
    // A refused take (another doctor was faster): the button is usable again.
    renderDuty();
  });
  sock.addEventListener('paired', (ev) => {
    view.offer = null;
    try {
      sessionStorage.setItem('kham.duty.after_call', '1');
    } catch {
      // comes back busy
    }
    hooks.onPaired(/** @type {CustomEvent} */ (ev).detail);
  });
  available.addEventListener('change', () => sock.send({ type: 'available', available: available.checked }));
  byId('queue-take').addEventListener('click', () => {
    /** @type {HTMLButtonElement} */ (byId('queue-take')).disabled = true;
    sock.send({ type: 'take' });
  });
  byId('duty-accept').addEventListener('click', () => {
    if (view.offer) sock.send({ type: 'accept', request_id: view.offer.entry.request_id });
  });
  byId('duty-decline').addEventListener('click', () => {
    if (view.offer) sock.send({ type: 'decline', request_id: view.offer.entry.request_id });
    view.offer = null;
    renderDuty();
  });
  // Waited minutes move on without a message.
  setInterval(renderDuty, 30000);
}
