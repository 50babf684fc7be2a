// The doctor's lobby panel: who is waiting, with admit and deny buttons.
import { byId, h, svg } from './dom.js';
import { ICONS } from './icons.js';
import { t, roleLabel } from './i18n.js';

/** @typedef {import('../sdk/kham.js').LobbyEntry} LobbyEntry */

/** @type {LobbyEntry[]} */
let entries = [];
/** @type {{onAdmit: (id: string) => void, onDeny: (id: string) => void, onMessage: (id: string, text: string) => void}|null} */
let handlers = null;
/** @type {ReturnType<typeof setInterval>|null} */
let ticker = null;

/**
 * Shows the current lobby list (an empty list hides the panel).
 * @param {LobbyEntry[]} list
 * @param {{onAdmit: (id: string) => void, onDeny: (id: string) => void, onMessage: (id: string, text: string) => void}} on
 */
export function renderLobby(list, on) {
  const arrived = list.some((e) => !entries.some((old) => old.id === e.id));
  entries = list;
  handlers = on;
  draw();
  if (arrived) notifyArrival();
  if (!ticker) ticker = setInterval(draw, 30_000); // refresh the "waiting N min" texts
}

/** Redraws with the current language. */
export function relabelLobby() {
  draw();
}

function draw() {
  const panel = byId('lobby-panel');
  const list = byId('lobby-list');
  panel.hidden = entries.length === 0;
  byId('lobby-count').textContent = entries.length ? `(${entries.length})` : '';
  list.replaceChildren(...entries.map(entryItem));
}

/** @param {LobbyEntry} e */
function entryItem(e) {
  const minutes = Math.floor((Date.now() - e.waitingSince) / 60_000);
  const waited = minutes >= 1 ? t('lobby.waited', { minutes }) : t('lobby.waited_now');
  const admit = h('button', {
    type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'admit',
    'aria-label': t('admit.label', { name: e.name }),
  }, [svg(ICONS.check), t('admit')]);
  const deny = h('button', {
    type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'deny',
    'aria-label': t('deny.label', { name: e.name }),
  }, [svg(ICONS.cross), t('deny')]);
  admit.addEventListener('click', () => {
    disable(admit, deny);
    handlers?.onAdmit(e.id);
  });
  deny.addEventListener('click', () => {
    disable(admit, deny);
    handlers?.onDeny(e.id);
  });
  return h('li', { class: 'lobby-entry', 'data-lobby-id': e.id, 'data-testid': 'lobby-entry' }, [
    h('div', { class: 'lobby-who' }, [
      h('span', { class: 'lobby-name' }, [e.name]),
      h('span', { class: 'lobby-meta' }, [`${roleLabel(e.role)} · ${waited}`]),
    ]),
    h('div', { class: 'lobby-actions' }, [admit, deny]),
    messageForm(e),
  ]);
}

/** A line to write to the waiting person ("I will be with you in 5 minutes"). @param {LobbyEntry} e */
function messageForm(e) {
  const label = t('chat.lobby_placeholder', { name: e.name });
  const input = /** @type {HTMLInputElement} */ (h('input', {
    type: 'text', class: 'lobby-chat-input', 'data-testid': 'lobby-chat-input', maxlength: '2000',
    autocomplete: 'off', placeholder: label, 'aria-label': label,
  }));
  // A redraw (every 30 s, or a lobby change) keeps what was being typed.
  input.value = drafts.get(e.id) || '';
  input.addEventListener('input', () => drafts.set(e.id, input.value));
  const form = h('form', { class: 'lobby-chat' }, [
    input,
    h('button', { type: 'submit', class: 'btn btn-secondary btn-small', 'data-testid': 'lobby-chat-send' }, [t('chat.lobby_send')]),
  ]);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!input.value.trim()) return;
    handlers?.onMessage(e.id, input.value);
    input.value = '';
    drafts.delete(e.id);
  });
  return form;
}

/** Unsent text per lobby entry. @type {Map<string, string>} */
const drafts = new Map();

/** @param {HTMLElement[]} buttons */
function disable(...buttons) {
  for (const b of buttons) b.setAttribute('disabled', '');
}

/** Someone new is waiting: flash the tab title so a doctor in another tab notices. */
function notifyArrival() {
  if (!document.hidden) return;
  const original = document.title;
  document.title = `(${entries.length}) ${t('lobby.title')}`;
  document.addEventListener('visibilitychange', () => { document.title = original; }, { once: true });
}
