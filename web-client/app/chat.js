// Chat: the call's chat panel (everyone in the call), the lobby entry's list of messages from the
// doctor, and the unread mark. Messages live only in this page (the server keeps none) and are
// dropped when the session ends.
import { byId, h } from './dom.js';
import { getLang, t, roleLabel } from './i18n.js';

/** @typedef {import('../sdk/kham.js').ChatMessage} ChatMessage */

/** At most this many messages are kept on the page (the oldest go first). */
const KEEP = 500;

/** @type {ChatMessage[]} */
let messages = [];
let myId = '';
let unread = 0;
/** Names of lobby entries, for the doctor's "to" line. @type {Map<string, string>} */
const lobbyNames = new Map();
/** @type {((text: string) => void)|null} */
let onSend = null;

/**
 * Wires the panel's form once; `send` is called with the text typed.
 * @param {(text: string) => void} send
 */
export function initChat(send) {
  onSend = send;
  const form = byId('chat-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('chat-input'));
    const text = input.value;
    if (!text.trim() || !onSend) return;
    onSend(text);
    input.value = '';
  });
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && !byId('chat-panel').hidden && unread > 0) {
    unread = 0;
    draw();
  }
});

/** Whose messages are "mine" (shown on the right, never unread). @param {string} id */
export function setChatSelf(id) {
  myId = id;
}

/** The lobby's current names (for the doctor's own messages to an entry). @param {{id: string, name: string}[]} entries */
export function setLobbyNames(entries) {
  for (const e of entries) lobbyNames.set(e.id, e.name);
}

/** A message relayed by the server (own ones included). @param {ChatMessage} m */
export function addChatMessage(m) {
  if (messages.some((x) => x.seq === m.seq)) return;
  messages.push(m);
  messages.sort((a, b) => a.seq - b.seq);
  if (messages.length > KEEP) messages = messages.slice(-KEEP);
  if (m.from !== myId && (byId('chat-panel').hidden || document.hidden)) unread += 1;
  draw();
}

/** Shows or hides the call's panel; showing it marks everything read. @param {boolean} [show] */
export function toggleChat(show) {
  const panel = byId('chat-panel');
  panel.hidden = show === undefined ? !panel.hidden : !show;
  if (!panel.hidden) {
    unread = 0;
    /** @type {HTMLInputElement} */ (byId('chat-input')).focus();
  }
  draw();
  return !panel.hidden;
}

/** How many messages from others arrived while the panel was closed. */
export function unreadCount() {
  return unread;
}

/** The session is over: nothing is kept. */
export function clearChat() {
  messages = [];
  unread = 0;
  lobbyNames.clear();
  draw();
}

/** Redraws (also after a language switch). */
export function relabelChat() {
  draw();
}

/** @type {(() => void)[]} */
const listeners = [];
/** Called after every redraw (the toggle button shows the unread count). @param {() => void} fn */
export function onChatChange(fn) {
  listeners.push(fn);
}

function draw() {
  const items = () => messages.map(item);
  byId('chat-list').replaceChildren(...items());
  const waiting = byId('waiting-chat');
  waiting.hidden = messages.length === 0;
  byId('waiting-chat-list').replaceChildren(...items());
  for (const list of [byId('chat-list'), byId('waiting-chat-list')]) list.scrollTop = list.scrollHeight;
  for (const fn of listeners) fn();
}

/** @param {ChatMessage} m */
function item(m) {
  const mine = m.from === myId;
  const when = new Date(m.ts_ms);
  const time = when.toLocaleTimeString(getLang() === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
  const who = mine ? t('you') : `${m.name} (${roleLabel(m.role)})`;
  const to = m.to && mine ? ` → ${lobbyNames.get(m.to) || t('chat.lobby_entry')}` : '';
  return h('li', {
    class: `chat-msg${mine ? ' mine' : ''}`, 'data-testid': 'chat-message',
    'data-seq': String(m.seq), 'data-from': m.from,
  }, [
    h('div', { class: 'chat-meta' }, [
      h('span', { class: 'chat-name', 'data-testid': 'chat-sender' }, [who + to]),
      ' ',
      h('time', { datetime: when.toISOString(), 'data-testid': 'chat-time' }, [time]),
    ]),
    h('p', { class: 'chat-text', 'data-testid': 'chat-text' }, [m.text]),
  ]);
}
