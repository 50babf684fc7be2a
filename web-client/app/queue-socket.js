// The specialist queue's WebSocket (/queue/ws?token=T), reconnecting after a drop: a station
// keeps its place for the server's grace, a doctor's duty page comes back on duty.
import { peekClaims } from './link.js';

/** Where this tab keeps its queue token once it left the address bar. */
const STORE_KEY = 'kham.queue';

/**
 * The queue token from the address (moved to sessionStorage and out of the address bar, as the
 * join link's is) or from this tab's storage.
 * @returns {{token: string, claims: {name?: string, role?: string}|null}|null}
 */
export function takeQueueToken() {
  const q = new URLSearchParams(location.search);
  let token = q.get('token');
  if (token) {
    q.delete('token');
    const rest = q.toString();
    history.replaceState(history.state, '', `${location.pathname}${rest ? `?${rest}` : ''}`);
    try {
      sessionStorage.setItem(STORE_KEY, token);
    } catch {
      // not kept: this load still has it
    }
  } else {
    try {
      token = sessionStorage.getItem(STORE_KEY);
    } catch {
      token = null;
    }
  }
  return token ? { token, claims: peekClaims(token) } : null;
}

export class QueueSocket extends EventTarget {
  /** @param {string} token */
  constructor(token) {
    super();
    this.token = token;
    /** @type {WebSocket|null} */
    this.ws = null;
    this.stopped = false;
    this.everOpened = false;
    this.attempt = 0;
  }

  open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/queue/ws?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.everOpened = true;
      this.attempt = 0;
      this.dispatchEvent(new CustomEvent('online'));
    });
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (msg && typeof msg.type === 'string') this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws || this.stopped) return;
      // Refused before it ever opened (a bad or expired token): no point in retrying.
      if (!this.everOpened || ev.code === 4004) {
        this.dispatchEvent(new CustomEvent('refused', { detail: { code: ev.code } }));
        return;
      }
      this.dispatchEvent(new CustomEvent('offline'));
      const delay = Math.min(10000, 500 * 2 ** this.attempt++);
      setTimeout(() => { if (!this.stopped) this.open(); }, delay);
    });
  }

  /** @param {Record<string, unknown>} msg */
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  stop() {
    this.stopped = true;
    this.ws?.close(1000);
  }
}
