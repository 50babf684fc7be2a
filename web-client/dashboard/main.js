// The operators' dashboard (/dashboard): sign in with an admin token, then live room load and
// call quality pushed by the server once per second (server-sent events). Shows no media.
import './strings.js';
import { byId } from '/app/dom.js';
import { applyI18n, getLang, setLang, t } from '/app/i18n.js';
import { ApiError, call, openEvents } from './api.js';
import { renderNode, renderRooms } from './tables.js';
import { hideRoom, renderRoom, resetHistory } from './room.js';
import { renderQueue, startQueue, stopQueue } from './queue.js';
import '/app/queue-strings.js';

/** @typedef {import('./api.js').Update} Update */

const TOKEN_KEY = 'kham.admin_token';

/** @type {string|null} */
let token = null;
/** @type {string|null} */
let selected = null;
/** @type {EventSource|null} */
let events = null;
/** @type {Update|null} */
let last = null;

// ---- language ----

function relabel() {
  document.documentElement.lang = getLang();
  document.title = t('dash.title');
  applyI18n(document);
  byId('lang-toggle').setAttribute('lang', getLang() === 'vi' ? 'en' : 'vi');
  if (last) render(last);
  renderQueue();
  setLive(events !== null && events.readyState === EventSource.OPEN);
}

byId('lang-toggle').addEventListener('click', () => {
  setLang(getLang() === 'vi' ? 'en' : 'vi');
  relabel();
});

// ---- sign-in ----

/** @param {string} key */
function loginError(key) {
  const el = byId('login-error');
  el.textContent = t(key);
  el.hidden = false;
}

/** Checks the token with the API, then shows the dashboard. @param {string} candidate */
async function signIn(candidate) {
  try {
    await call(candidate, '/api/admin/node');
  } catch (e) {
    if (e instanceof ApiError) loginError(e.status === 403 ? 'dash.login.forbidden' : 'dash.login.bad');
    else loginError('dash.login.network');
    sessionStorage.removeItem(TOKEN_KEY);
    return;
  }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  byId('login-error').hidden = true;
  byId('login').hidden = true;
  byId('dash').hidden = false;
  byId('logout').hidden = false;
  connect();
  startQueue(candidate);
}

function signOut() {
  stopQueue();
  events?.close();
  events = null;
  token = null;
  selected = null;
  last = null;
  sessionStorage.removeItem(TOKEN_KEY);
  hideRoom();
  byId('dash').hidden = true;
  byId('logout').hidden = true;
  byId('live').hidden = true;
  byId('login').hidden = false;
}

byId('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const v = /** @type {HTMLTextAreaElement} */ (byId('token')).value.trim();
  if (v) signIn(v);
});
byId('logout').addEventListener('click', signOut);

// ---- live updates ----

/** @param {boolean} ok */
function setLive(ok) {
  const el = byId('live');
  if (!token) return;
  el.hidden = false;
  el.className = `live ${ok ? 'ok' : 'down'}`;
  el.textContent = t(ok ? 'dash.live.ok' : 'dash.live.down');
}

/** (Re)opens the event stream, for the selected room if any. */
function connect() {
  events?.close();
  if (!token) return;
  const es = openEvents(token, selected);
  events = es;
  es.addEventListener('open', () => setLive(true));
  es.addEventListener('update', (ev) => {
    last = /** @type {Update} */ (JSON.parse(/** @type {MessageEvent} */ (ev).data));
    setLive(true);
    render(last);
  });
  es.addEventListener('error', async () => {
    setLive(false);
    if (es.readyState !== EventSource.CLOSED || events !== es) return;
    // The server refused the stream (expired token?) or is gone: check why before retrying.
    try {
      if (token) await call(token, '/api/admin/node');
      setTimeout(() => { if (events === es) connect(); }, 2000);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        signOut();
        loginError('dash.login.bad');
      } else {
        setTimeout(() => { if (events === es) connect(); }, 2000);
      }
    }
  });
}

/** @param {Update} u */
function render(u) {
  renderNode(u.node);
  renderRooms(u.rooms, selected, openRoom);
  if (selected) renderRoom(selected, u.room && u.room.room === selected ? u.room : null, u.at_ms, { onRemove: removeParticipant });
}

/** @param {string} room */
async function openRoom(room) {
  if (!token) return;
  selected = room;
  try {
    const detail = await call(token, `/api/admin/rooms/${encodeURIComponent(room)}`);
    resetHistory(detail.history);
    renderRoom(room, detail, Date.now(), { onRemove: removeParticipant });
  } catch {
    resetHistory({});
    renderRoom(room, null, Date.now(), { onRemove: removeParticipant });
  }
  if (last) renderRooms(last.rooms, selected, openRoom);
  connect();
}

byId('room-back').addEventListener('click', () => {
  selected = null;
  hideRoom();
  if (last) renderRooms(last.rooms, selected, openRoom);
  connect();
});

/** @param {unknown} e */
function actionFailed(e) {
  alert(t('dash.action_failed', { message: e instanceof Error ? e.message : String(e) }));
}

byId('close-room').addEventListener('click', async () => {
  const room = selected;
  if (!token || !room || !confirm(t('dash.room.close.confirm', { room }))) return;
  try {
    await call(token, `/api/admin/rooms/${encodeURIComponent(room)}/close`, { method: 'POST' });
  } catch (e) {
    actionFailed(e);
  }
});

/** @param {import('./api.js').Participant} p */
async function removeParticipant(p) {
  const room = selected;
  if (!token || !room || !confirm(t('dash.remove.confirm', { name: p.name }))) return;
  try {
    await call(token, `/api/admin/rooms/${encodeURIComponent(room)}/participants/${encodeURIComponent(p.id)}/remove`, { method: 'POST' });
  } catch (e) {
    actionFailed(e);
  }
}

// ---- start: ?token= from a dev link (then removed from the address bar), or this tab's ----

relabel();
const fromUrl = new URLSearchParams(location.search).get('token');
if (fromUrl) history.replaceState(null, '', location.pathname);
const saved = fromUrl || sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved);
