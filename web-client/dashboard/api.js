// The operator API as the dashboard uses it (see /api/openapi.json for the full description).

/**
 * @typedef {object} NodeLoad
 * @property {number|null} cpu_percent
 * @property {number} cores
 * @property {number} rooms
 * @property {number} participants
 * @property {number} lobby
 * @property {number} tracks
 * @property {number} pps_in
 * @property {number} pps_out
 * @property {number} kbps_in
 * @property {number} kbps_out
 * @property {number} udp_dropped
 * @property {number} udp_send_dropped
 * @property {number} uptime_s
 * @property {boolean} draining
 */

/**
 * @typedef {object} RoomRow
 * @property {string} room
 * @property {number} age_s
 * @property {Record<string, number>} participants  in the call, by role
 * @property {number} lobby
 * @property {number} kbps_in
 * @property {number} kbps_out
 * @property {string|null} quality
 */

/**
 * @typedef {object} Participant
 * @property {string} id
 * @property {string} name
 * @property {string} role
 * @property {'admitted'|'waiting'} status
 * @property {number} joined_s
 * @property {string} client
 * @property {boolean} connected
 * @property {string|null} quality
 * @property {number|null} rtt_ms
 * @property {number|null} loss_in_percent
 * @property {number|null} loss_out_percent
 * @property {number|null} estimate_kbps
 * @property {{publisher: string, layer: number|null}[]} layers
 * @property {boolean} audio_only
 * @property {number} kbps_in
 * @property {number} kbps_out
 */

/** @typedef {[number, number, number, number|null]} Sample  unix s, kbps in, kbps out, loss % */

/**
 * @typedef {object} RoomDetail
 * @property {string} room
 * @property {number} age_s
 * @property {number} lobby
 * @property {string|null} quality
 * @property {Participant[]} participants
 * @property {Record<string, Sample[]>} [history]
 */

/**
 * @typedef {object} Update  one server-sent `update` event
 * @property {number} at_ms
 * @property {NodeLoad} node
 * @property {RoomRow[]} rooms
 * @property {RoomDetail|null} room
 */

/** An API refusal with its typed code. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API with the admin token; resolves to the JSON body or throws ApiError.
 * @param {string} token
 * @param {string} path
 * @param {{method?: string, body?: object}} [opts]
 */
export async function call(token, path, { method = 'GET', body } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${token}` };
  if (body) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, json.error || 'http_error', json.message || `HTTP ${res.status}`);
  return json;
}

/**
 * The live update stream (token in the query: EventSource cannot send headers).
 * @param {string} token
 * @param {string|null} room  also stream this room's participants
 */
export function openEvents(token, room) {
  const q = new URLSearchParams({ token });
  if (room) q.set('room', room);
  return new EventSource(`/api/admin/events?${q}`);
}
