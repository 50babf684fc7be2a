// The join link: /join?room=ROOM&token=JWT. The token's payload is read (not verified: the
// server does that) only to greet the person by name before they join.

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
