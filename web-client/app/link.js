// The join link: /join?room=ROOM&token=JWT. The token's payload is read (not verified: the
// server does that) only to greet the person by name before they join.

/** Where this tab keeps its join link once the token has left the address bar. */
const STORE_KEY = 'kham.join';

/**
 * @typedef {object} JoinLink
 * @property {string} room
 * @property {string} token
 * @property {{name?: string, role?: string, room?: string}|null} claims  unverified, for display
 */

/**
 * Room and token from the page URL, or null when either is missing.
 * @param {string} [search]
 * @returns {JoinLink|null}
 */
export function readJoinLink(search = location.search) {
  const q = new URLSearchParams(search);
  const room = q.get('room');
  const token = q.get('token');
  if (!room || !token) return null;
  return { room, token, claims: peekClaims(token) };
}

/**
 * This tab's join link. A token in the address is moved to sessionStorage (this tab only, gone
 * when it closes) and removed from the address bar, leaving `/join?room=ROOM`: the token then
 * stays out of the history, bookmarks, and the address bar seen on a shared screen or a
 * screenshot. A reload or "rejoin" finds it in sessionStorage. Never logged.
 * @returns {JoinLink|null}
 */
export function takeJoinLink() {
  const q = new URLSearchParams(location.search);
  const link = readJoinLink(location.search);
  if (q.has('token')) {
    q.delete('token');
    const rest = q.toString();
    history.replaceState(history.state, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
    if (link) {
      try {
        sessionStorage.setItem(STORE_KEY, JSON.stringify({ room: link.room, token: link.token }));
      } catch {
        // storage refused (private mode, quota): this page load still has the token
      }
    }
    return link;
  }
  const room = q.get('room');
  if (!room) return null;
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
    if (saved && saved.room === room && typeof saved.token === 'string' && saved.token) {
      return { room, token: saved.token, claims: peekClaims(saved.token) };
    }
  } catch {
    // unreadable: treat as no saved link
  }
  return null;
}

/**
 * The payload of a JWT without checking its signature; null when it is not a JWT.
 * @param {string} token
 */
export function peekClaims(token) {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}
