// A stand-in for the kham server that speaks the signaling protocol (crates/proto/PROTOCOL.md)
// without any media: enough to drive the web client's screens (preview, lobby, call tiles,
// mute indicators, denied/removed/ended, connection failure) in ui.test.mjs.
//
// It serves web-client/ like the real server (/ -> files, /join -> index.html, /ws -> signaling).
// Tokens are JWT-shaped but unsigned: mockToken({room, name, role}). Offers are recorded (so a
// test can inspect the browser's SDP) and never answered.
//
// Tests can also play the server's part directly: push(participantId, msg) sends any server
// message to one participant, and sentBy(participantId, type) reads what that client sent
// (every message is recorded with its arrival time). `audio_only` is confirmed with a
// `video_state` for the video mids last pushed to that participant in `tracks`/`offer`.
//
// Run by hand: node tests/browser/mock-server.mjs [port]  (prints join links)

import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const WEB_ROOT = path.resolve(HERE, '../../web-client');

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The Content-Security-Policy kham sends (web-client/content-security-policy.txt), so the UI
 * tests run under the same policy as the real pages. */
export const CSP = (await fs.readFile(path.join(WEB_ROOT, 'content-security-policy.txt'), 'utf8'))
  .split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).join('; ');

const b64url = (s) => Buffer.from(s).toString('base64url');

/**
 * An unsigned JWT-shaped token the mock accepts.
 * @param {{room: string, name: string, role: string, identity?: string}} c
 */
export function mockToken({ room, name, role, identity }) {
  const claims = {
    sub: identity || `${role}-${crypto.randomBytes(3).toString('hex')}`,
    name, role, room,
    jti: crypto.randomUUID(),
    exp: Math.floor(Date.now() / 1000) + 3600,
  };
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.mock`;
}

function parseToken(token) {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
    if (!claims.room || !claims.role || !claims.name) return null;
    return claims;
  } catch {
    return null;
  }
}

/**
 * Starts the mock on 127.0.0.1.
 * @param {{port?: number}} [opts]
 */
export async function startMockServer({ port = 0 } = {}) {
  /** @type {Map<string, Room>} */
  const rooms = new Map();
  const revoked = new Set();
  /** Every client message received, in order: {from: participantId, msg, at: Date.now()}. */
  const received = [];
  /** Types answered `unknown_type` like an older server would (tests may fill it). @type {Set<string>} */
  const rejectTypes = new Set();

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/healthz') return void res.writeHead(200).end('ok');
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    let file = url.pathname === '/join' || url.pathname === '/' ? '/index.html' : url.pathname;
    const full = path.resolve(WEB_ROOT, '.' + decodeURIComponent(file));
    if (!full.startsWith(WEB_ROOT + path.sep)) return void res.writeHead(404).end();
    try {
      const body = await fs.readFile(full);
      res.writeHead(200, {
        'content-type': MIME[path.extname(full)] || 'application/octet-stream',
        'cache-control': 'no-store',
        'content-security-policy': CSP,
      });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://localhost');
    const refuse = (status, error) => {
      const body = JSON.stringify({ error, message: error });
      socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    };
    if (url.pathname !== '/ws') return refuse(404, 'not_found');
    const room = url.searchParams.get('room');
    const token = url.searchParams.get('token');
    if (!token) return refuse(401, 'missing_token');
    const claims = parseToken(token);
    if (!claims) return refuse(401, 'invalid_token');
    if (claims.room !== room) return refuse(401, 'wrong_room');
    if (revoked.has(claims.jti)) return refuse(401, 'revoked_token');
    const r = rooms.get(room) || new Room(room);
    rooms.set(room, r);
    if (r.ended) return refuse(403, 'room_ended');
    wss.handleUpgrade(req, socket, head, (ws) => r.join(ws, claims));
  });

  class Room {
    constructor(id) {
      this.id = id;
      /** @type {Map<string, Peer>} */
      this.peers = new Map();
      this.ended = false;
    }
    get inCall() { return [...this.peers.values()].filter((p) => p.status === 'admitted'); }
    get waiting() { return [...this.peers.values()].filter((p) => p.status === 'waiting'); }

    join(ws, claims) {
      const peer = {
        ws, claims, status: claims.role === 'patient' ? 'waiting' : 'admitted', since: Date.now(),
        info: { id: `p-${crypto.randomBytes(8).toString('hex')}`, name: claims.name, role: claims.role, audio_muted: false, video_muted: false },
        gone: false,
        /** Tracks last pushed to this client by a test (`tracks` or `offer`). */
        tracks: [],
      };
      this.peers.set(peer.info.id, peer);
      send(peer, {
        type: 'welcome', protocol: 1, room: this.id, me: peer.info,
        participants: this.inCall.filter((p) => p !== peer).map((p) => p.info), status: peer.status,
      });
      if (peer.status === 'admitted') this.broadcast({ type: 'participant_joined', participant: peer.info }, peer);
      if (claims.role === 'doctor' || peer.status === 'waiting') this.sendLobby();
      ws.on('message', (data) => this.onMessage(peer, data.toString()));
      ws.on('close', () => this.drop(peer, 'connection_lost'));
    }

    onMessage(peer, text) {
      let msg;
      try { msg = JSON.parse(text); } catch { return send(peer, { type: 'error', code: 'bad_json', message: 'not JSON' }); }
      received.push({ from: peer.info.id, msg, at: Date.now() });
      if (rejectTypes.has(msg.type)) {
        // The real server's wording (crates/proto ParseError::UnknownType).
        return send(peer, { type: 'error', code: 'unknown_type', message: `unknown message type ${JSON.stringify(msg.type)}` });
      }
      const admitter = peer.claims.role === 'doctor';
      const forbid = () => send(peer, { type: 'error', code: 'forbidden', message: 'admit grant required' });
      switch (msg.type) {
        case 'admit': {
          if (!admitter) return forbid();
          const p = this.peers.get(msg.id);
          if (!p || p.status !== 'waiting') return send(peer, { type: 'error', code: 'not_found', message: msg.id });
          p.status = 'admitted';
          send(p, { type: 'admitted', participants: this.inCall.filter((x) => x !== p).map((x) => x.info) });
          this.broadcast({ type: 'participant_joined', participant: p.info }, p);
          return this.sendLobby();
        }
        case 'deny':
        case 'remove': {
          if (!admitter) return forbid();
          const p = this.peers.get(msg.id);
          if (!p) return send(peer, { type: 'error', code: 'not_found', message: msg.id });
          revoked.add(p.claims.jti);
          const denied = msg.type === 'deny';
          send(p, { type: denied ? 'denied' : 'removed', reason: msg.reason || '' });
          this.drop(p, denied ? 'denied' : 'removed');
          p.ws.close(denied ? 4001 : 4002);
          return;
        }
        case 'end_consult':
          if (!admitter) return forbid();
          this.ended = true;
          for (const p of [...this.peers.values()]) {
            send(p, { type: 'ended', reason: msg.reason || '' });
            p.gone = true;
            p.ws.close(4003);
          }
          this.peers.clear();
          return;
        case 'mute':
          if (peer.status !== 'admitted') return send(peer, { type: 'error', code: 'bad_state', message: 'waiting' });
          peer.info = { ...peer.info, [msg.kind === 'audio' ? 'audio_muted' : 'video_muted']: !!msg.muted };
          return this.broadcast({ type: 'participant_updated', participant: peer.info });
        case 'leave':
          this.drop(peer, 'left');
          peer.ws.close(1000);
          return;
        case 'ping':
          return send(peer, { type: 'pong', id: msg.id });
        case 'offer':
        case 'answer':
        case 'video_view':
          if (peer.status !== 'admitted') return send(peer, { type: 'error', code: 'bad_state', message: 'waiting' });
          return; // recorded in `received`; no media in the mock
        case 'audio_only': {
          if (peer.status !== 'admitted') return send(peer, { type: 'error', code: 'bad_state', message: 'waiting' });
          const on = !!msg.enabled;
          const tracks = peer.tracks.filter((t) => t.kind === 'video' && t.active !== false).map((t) => ({
            mid: t.mid, participant: t.participant, paused: on,
            reason: on ? 'audio_only' : null, layer: on ? null : { spatial: 2, temporal: 2 },
          }));
          if (tracks.length) send(peer, { type: 'video_state', tracks });
          return;
        }
        default:
          return send(peer, { type: 'error', code: 'unknown_type', message: String(msg.type) });
      }
    }

    drop(peer, reason) {
      if (peer.gone) return;
      peer.gone = true;
      this.peers.delete(peer.info.id);
      if (peer.status === 'admitted') this.broadcast({ type: 'participant_left', id: peer.info.id, reason });
      else this.sendLobby();
    }

    sendLobby() {
      const entries = this.waiting.map((p) => ({ id: p.info.id, name: p.info.name, role: p.info.role, waiting_since_ms: Date.now() - p.since }));
      for (const p of this.peers.values()) {
        if (p.claims.role === 'doctor') send(p, { type: 'lobby', entries });
      }
    }

    broadcast(msg, except) {
      for (const p of this.inCall) if (p !== except) send(p, msg);
    }
  }

  function send(peer, msg) {
    if (peer.ws.readyState === peer.ws.OPEN) peer.ws.send(JSON.stringify(msg));
  }

  function findPeer(id) {
    for (const r of rooms.values()) {
      const p = r.peers.get(id);
      if (p) return p;
    }
    return null;
  }

  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: base,
    received,
    rejectTypes,
    rooms,
    /**
     * Sends a server message to one participant (throws for an unknown or gone id).
     * @param {string} participantId
     * @param {object & {type: string}} msg
     */
    push(participantId, msg) {
      const peer = findPeer(participantId);
      if (!peer || peer.gone) throw new Error(`mock: no participant ${participantId}`);
      if ((msg.type === 'tracks' || msg.type === 'offer') && Array.isArray(msg.tracks)) peer.tracks = msg.tracks;
      send(peer, msg);
    },
    /**
     * What a participant's client sent, oldest first: [{msg, at}], optionally of one type.
     * @param {string} participantId
     * @param {string} [type]
     */
    sentBy(participantId, type) {
      return received.filter((r) => r.from === participantId && (!type || r.msg.type === type));
    },
    /** A join link for the web client. */
    joinLink(room, name, role, tokenRoom = room) {
      const token = mockToken({ room: tokenRoom, name, role });
      return `${base}/join?room=${encodeURIComponent(room)}&token=${encodeURIComponent(token)}`;
    },
    close() {
      for (const c of wss.clients) c.terminate();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const mock = await startMockServer({ port: Number(process.argv[2] || 0) });
  console.log(`mock kham on ${mock.url}`);
  console.log(`doctor:  ${mock.joinLink('demo', 'BS. Nguyễn Văn An', 'doctor')}`);
  console.log(`patient: ${mock.joinLink('demo', 'Trần Thị Bình', 'patient')}`);
  console.log(`station: ${mock.joinLink('demo', 'Trạm y tế xã Tân Phú', 'station')}`);
}
