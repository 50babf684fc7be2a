// kham browser SDK: signaling (WebSocket JSON, crates/proto/PROTOCOL.md) and media (one
// RTCPeerConnection) for one participant. Independent of the kham UI, so another web app (a
// booking site) can embed a call:
//
//   import { KhamClient } from '/sdk/kham.js';
//   const client = new KhamClient();
//   client.addEventListener('track', (e) => attach(e.detail.participantId, e.detail.stream));
//   await client.connect({ room, token });
//   await client.publish(await navigator.mediaDevices.getUserMedia({ audio: true, video: true }));
//   client.observeVideo(participantId, videoElement); // adaptive stream: report tile sizes

import { ViewReporter } from './views.js';
import { applyAudioRate, applyPublishLayers, withPacketTime } from './layers.js';
import { SHARE_ENCODING, startShareSender, stopShareSender } from './share.js';
import { decodeForwarded, KIND_WAVE, KIND_NUMERICS, MAX_FRAME } from './vitals-frame.js';

/** Labels of the vital-sign data channels (crates/sfu/src/vitals.rs). */
export const VITALS_WAVE_LABEL = 'kham-vitals-wave';
export const VITALS_NUM_LABEL = 'kham-vitals-num';
export const IMAGE_LABEL = 'kham-image';
/** A waveform frame is dropped rather than queued behind this much unsent data. */
const WAVE_MAX_BUFFERED = 8 * 1024;

/** Signaling protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** WebSocket close codes used by the server. */
export const CLOSE_CODES = Object.freeze({
  NORMAL: 1000,
  TOO_BIG: 1009,
  DENIED: 4001,
  REMOVED: 4002,
  ENDED: 4003,
  REPLACED: 4004,
  /** Closed for sending past the server's signaling rate limit (reported as `connection_lost`). */
  FLOODING: 4005,
  /** A resume found nothing to resume (the grace passed, or a wrong secret): join anew. */
  RESUME_FAILED: 4006,
  /** Sent by this client when it gives up a socket that stopped answering, to resume on another. */
  ABANDONED: 4100,
});

/** Largest chat text the server relays, in bytes of UTF-8 (crates/proto MAX_CHAT_BYTES). */
export const MAX_CHAT_BYTES = 2000;

/** A chat message the SDK refused to send (`code`: `too_large` or `empty`). */
export class ChatError extends Error {
  /** @param {'too_large'|'empty'} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
  }
}

/** The three simulcast layers of the camera track: quarter, half and full resolution. */
export const SIMULCAST_ENCODINGS = Object.freeze([
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
]);

/**
 * What an encoding returns to when `publish_layers` leaves a limit out: the simulcast ladder,
 * and the screen share's single encoding (rid "").
 */
export const PUBLISH_DEFAULTS = Object.freeze([...SIMULCAST_ENCODINGS, { rid: '', maxBitrate: SHARE_ENCODING.maxBitrate }]);

/** A ping every 5 s; a socket silent for 12 s is taken for dead and resumed on a new one. */
const PING_INTERVAL_MS = 5_000;
const SILENT_SOCKET_MS = 12_000;
const LEAVE_CLOSE_TIMEOUT_MS = 1_500;
/**
 * Resume attempts after a dropped socket: at once, then backing off (LiveKit's policy shape);
 * the last delay repeats until the server's reconnect grace runs out, then the client joins anew.
 */
const RESUME_DELAYS_MS = [0, 300, 1200, 2700, 4800, 7000];
/** A resume attempt that has not been answered in this long is abandoned. */
const RESUME_TIMEOUT_MS = 5_000;
/** ICE `disconnected` this long, or `failed`, while the socket answers: ask for an ICE restart. */
const ICE_TROUBLE_MS = 1_000;
/** While ICE stays down, ask again this often. */
const ICE_RESTART_EVERY_MS = 4_000;
/**
 * The media path is watched every PATH_CHECK_MS (bytes received on the transport). When bytes
 * arrived at every check for STEADY_MS and then none for SILENT_PATH_MS, the path is taken for
 * gone (a network switch, a dead NAT mapping): the socket is resumed and an ICE restart asked
 * for at once. Chromium itself moved to its other network only 3.5 s after a switch, its ICE
 * state still `connected` (tests/browser/network.test.mjs); a restart checks every pair anew.
 */
const PATH_CHECK_MS = 250;
const STEADY_MS = 2_000;
const SILENT_PATH_MS = 1_000;

/**
 * @typedef {'doctor'|'station'|'patient'|'observer'} Role
 * @typedef {'audio'|'video'} MediaKind
 * @typedef {'waiting'|'admitted'} Status
 *
 * @typedef {object} Participant
 * @property {string} id            server-assigned session id, e.g. "p-3f2a…"
 * @property {string} name
 * @property {Role} role
 * @property {boolean} audio_muted
 * @property {boolean} video_muted
 * @property {boolean} [reconnecting]  its connection is being restored (the server keeps it meanwhile)
 *
 * @typedef {object} LobbyEntry
 * @property {string} id
 * @property {string} name
 * @property {Role} role
 * @property {number} waiting_since_ms  as sent: how long the entry has been waiting, in ms
 * @property {number} waitingSince      added by the SDK: when the wait started, local Date.now() ms
 *
 * @typedef {object} TrackInfo
 * @property {string} mid
 * @property {string} participant
 * @property {MediaKind} kind
 * @property {boolean} active
 * @property {boolean} [screen]  the publisher's screen share (show it large)
 *
 * @typedef {object} Welcome
 * @property {number} protocol
 * @property {string} room
 * @property {Participant} me
 * @property {Participant[]} participants
 * @property {Status} status
 * @property {string} [resume_token]        resumes this session on a new socket
 * @property {number} [reconnect_grace_ms]  for this long after it dropped
 *
 * @typedef {'left'|'denied'|'removed'|'ended'|'replaced'|'connect_failed'|'connection_lost'} CloseReason
 *
 * @typedef {object} ClosedDetail
 * @property {CloseReason} reason  why this client's session is over
 * @property {string} message      the server's reason text, or a description
 * @property {number} code         the WebSocket close code (1006 when the socket never opened)
 *
 * @typedef {object} ChatMessage  one relayed chat message (never stored by the server)
 * @property {number} seq      the room's counter: show in this order
 * @property {string} from     sender's participant id
 * @property {string} name     sender's display name
 * @property {Role} role
 * @property {number} ts_ms    when the server relayed it, Unix ms
 * @property {string} text
 * @property {string} [to]     the lobby entry it was written to (absent: the whole call)
 *
 * @typedef {object} TrackDetail
 * @property {string} participantId
 * @property {MediaKind} kind
 * @property {string} mid
 * @property {MediaStreamTrack} track
 * @property {boolean} screen  a screen share (its own tile; not part of `stream`)
 * @property {MediaStream} stream  the participant's live camera and audio tracks (a new object on every change)
 *
 * @typedef {'bandwidth'|'audio_only'|'hidden'|'no_video'} PauseReason
 *
 * @typedef {object} VideoState  one received video, as the server forwards it
 * @property {string} mid
 * @property {string} participant
 * @property {boolean} paused            nothing of this video is forwarded now
 * @property {PauseReason|null} reason   why it is paused (null when not paused)
 * @property {{spatial: number, temporal: number}|null} layer  the layer forwarded, null when paused
 *
 * @typedef {'excellent'|'good'|'poor'|'lost'} Quality
 *
 * @typedef {object} ParticipantQuality
 * @property {string} id
 * @property {Quality} quality
 *
 * @typedef {object} PublishLayersDetail
 * @property {string} mid
 * @property {{rid: string, active: boolean}[]} layers  as the server sent them
 * @property {{rid: string, active: boolean}[]|null} encodings  the sender's encodings afterwards;
 *                                                    null when they could not be set
 *
 * @typedef {object} ConnectOptions
 * @property {string} room
 * @property {string} token
 * @property {string} [url]  server base: http(s)://host, ws(s)://host or a full .../ws URL;
 *                           default: the page's own host
 * @property {RTCIceTransportPolicy} [iceTransportPolicy]  'relay' forces media through the TURN
 *                           servers the server hands out (tests, or a deployment that wants it)
 */

/**
 * Events (all CustomEvent, data in `detail`):
 * - `welcome` {Welcome}; `status` {status}; `admitted` {participants}
 * - `lobby` {entries: LobbyEntry[]} (only for participants holding the admit grant)
 * - `participantjoined` / `participantupdated` {participant}; `participantleft` {id, reason}
 * - `track` / `trackremoved` {TrackDetail}
 * - `connectionstate` {state} (the RTCPeerConnection's connectionState)
 * - `videostate` {tracks: VideoState[]} (every received video: paused or forwarded, and why)
 * - `quality` {participants: ParticipantQuality[]} (everyone's connection quality, own included)
 * - `publishlayers` {PublishLayersDetail} (dynacast: own simulcast encodings switched on/off)
 * - `audiorate` {mid, maxBitrate, applied} (own Opus rate capped for a thin listener, or restored;
 *   `applied`: the sender's maxBitrate afterwards, null when it could not be set)
 * - `packettime` {mid, ptime} (the server asked for this packet time on the own audio, 20 being
 *   the default; applied by a renegotiation that follows)
 * - `chat` {ChatMessage} (a chat message to the call, or from a doctor to this lobby entry; the
 *   sender gets its own back)
 * - `vitals` {participantId, frame, receivedAt} (a vital-signs frame from another participant,
 *   decoded by vitals-frame.js; `receivedAt` on this page's clock, Unix ms)
 * - `imageframe` {participantId, frame} (a still-image frame from another participant: images.js)
 * - `error` {code, message} (a server `error` reply; the session goes on)
 * - `reconnecting` {since} (the signaling socket dropped: the SDK resumes the same session on a
 *   new one; the peer connection, tiles and tracks stay); `reconnected` {resumed} (`resumed`:
 *   the same participant is back; false: the server had given it up and the SDK joined anew,
 *   announced by `welcome`)
 * - `closed` {ClosedDetail} (the session is over; emitted once)
 */
export class KhamClient extends EventTarget {
  constructor() {
    super();
    /** @type {WebSocket|null} */
    this.ws = null;
    /** The media connection, once publishing started (exposed for stats and tests). @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {Participant|null} */
    this.me = null;
    /** @type {string|null} */
    this.room = null;
    /** @type {Status|null} */
    this.status = null;
    /** Others in the call, by id. @type {Map<string, Participant>} */
    this.participants = new Map();
    /** The last lobby list received (admit grant only). @type {LobbyEntry[]} */
    this.lobby = [];
    /** Whether this session received `lobby` messages, i.e. holds the admit grant. */
    this.canAdmit = false;
    /** Whether the session is over. */
    this.closed = false;
    /** The last `video_state` list, by mid. @type {Map<string, VideoState>} */
    this.videoStates = new Map();
    /** Everyone's last known connection quality (own included), by participant id. @type {Map<string, Quality>} */
    this.quality = new Map();

    /** The vital-sign and image data channels, once media started. @type {{wave: RTCDataChannel, num: RTCDataChannel, image: RTCDataChannel}|null} */
    this._vitalsChannels = null;
    /** Vitals frames received that could not be decoded. */
    this._vitalsDropped = 0;
    /** @type {MediaStream|null} */
    this._localStream = null;
    /** publish() was called; media starts once admitted. */
    this._publishRequested = false;
    this._offerSent = false;
    /** A new offer for a packet time is queued. */
    this._reofferQueued = false;
    /** Current mid -> track mapping from the server. @type {Map<string, TrackInfo>} */
    this._trackInfo = new Map();
    /**
     * The own screen share's transceiver, whether it is sending, and whether the offer that
     * started or stopped it still waits for its answer (one crossed by a server offer, `glare`,
     * is made again after that one is answered). @type {{tr: RTCRtpTransceiver|null, on: boolean, unanswered: boolean}}
     */
    this._share = { tr: null, on: false, unanswered: false };
    /** Receive transceivers surfaced to the app, by mid. @type {Map<string, {participantId: string, kind: MediaKind, track: MediaStreamTrack, screen: boolean}>} */
    this._surfaced = new Map();
    /** Own mute state, sent again after admission. */
    this._muted = { audio: false, video: false };
    /** Audio only (receive no video), sent again after admission. */
    this._audioOnly = false;
    /** Adaptive stream reporting; created by the first observeVideo(). @type {ViewReporter|null} */
    this._views = null;
    /** Serializes dynacast setParameters calls. @type {Promise<void>} */
    this._layersQueue = Promise.resolve();
    /** The server's last `publish_layers` per mid, re-applied when the camera is (un)muted. @type {Map<string, any[]>} */
    this._publishLayers = new Map();
    /**
     * Packet time (ms) the server asked for per own audio mid (`audio_rate.ptime`), written into
     * every remote description (`a=ptime`, which Chromium's Opus encoder follows), and what the
     * last applied one carried. @type {Map<string, number>}
     */
    this._ptimeWanted = new Map();
    /** @type {Map<string, number>} */
    this._ptimeApplied = new Map();
    /** Optional message types the server answered `unknown_type` (an older server). @type {Set<string>} */
    this._unsupported = new Set();
    /** Serializes SDP work so server messages are applied in order. @type {Promise<void>} */
    this._queue = Promise.resolve();
    /** @type {ReturnType<typeof setInterval>|null} */
    this._pingTimer = null;
    this._pingId = 0;
    this._leaving = false;
    /** Set by `denied`/`removed`/`ended`, read when the server then closes. @type {{reason: string, message: string}|null} */
    this._pendingClose = null;
    /** Whether the session is being restored after a dropped socket. */
    this.reconnecting = false;
    /** What connect() was given, for resumes and rejoins. @type {ConnectOptions|null} */
    this._opts = null;
    /** From `welcome`: the secret that resumes this session, and for how long. */
    this._resumeToken = null;
    this._graceMs = 0;
    /** When a message last arrived on the socket (Date.now()). */
    this._lastRx = 0;
    /** The offer_id of the server offer being answered. @type {number|null} */
    this._offerId = null;
    /** TURN servers with credentials, from the server (`welcome`, `admitted`, `resumed`, `offer`). @type {RTCIceServer[]} */
    this._iceServers = [];
    /** ICE watch: the pending check, and when a restart was last asked for. */
    this._iceTimer = null;
    this._iceAskedAt = 0;
    this._onOnline = () => this._networkChanged();
    /** Media path watch (PATH_CHECK_MS). @type {ReturnType<typeof setInterval>|null} */
    this._pathTimer = null;
    this._pathBytes = 0;
    this._pathRxAt = 0;
    this._pathSteadySince = 0;
    this._pathTripped = false;
    this._pathBusy = false;
    /** An ICE restart is owed once the socket is resumed. */
    this._restartAfterResume = false;
  }

  /**
   * Opens the signaling WebSocket and resolves with the `welcome` message. Rejects (and emits
   * `closed` with reason `connect_failed`) when the socket closes before `welcome`: the server
   * refuses the upgrade with HTTP 401/403 for a bad, expired or wrong-room token or a full or
   * ended room, which browsers do not expose beyond the failed connection.
   * @param {ConnectOptions} options
   * @returns {Promise<Welcome>}
   */
  connect({ url, room, token, iceTransportPolicy }) {
    if (this.ws) return Promise.reject(new Error('already connected'));
    this.room = room;
    this._opts = { url, room, token, iceTransportPolicy };
    if (typeof window !== 'undefined') window.addEventListener('online', this._onOnline);
    const conn = typeof navigator !== 'undefined' && /** @type {any} */ (navigator).connection;
    if (conn && conn.addEventListener) conn.addEventListener('change', this._onOnline);
    return this._join(false);
  }

  /**
   * Opens a join socket and resolves with `welcome`. `rejoin`: the server gave the old session
   * up, and a failure now ends the session as `connection_lost` rather than `connect_failed`.
   * @param {boolean} rejoin
   * @returns {Promise<Welcome>}
   */
  _join(rejoin) {
    const opts = /** @type {ConnectOptions} */ (this._opts);
    const ws = new WebSocket(wsUrl(opts.url, opts.room, opts.token));
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      this._wire(ws, (msg) => {
        if (msg.type !== 'welcome' || welcomed) return false;
        welcomed = true;
        this._onWelcome(msg);
        resolve(msg);
        return true;
      }, (ev) => {
        if (welcomed) {
          this._onSocketClose(ev);
          return;
        }
        // Browsers hide the refused upgrade's status and body; a plain GET of the same URL
        // returns them (401/403 with {"error": code}), so the UI can say why.
        refusalReason(ws.url).then((error) => {
          const message = error || 'could not connect';
          this._finish({ reason: rejoin ? 'connection_lost' : 'connect_failed', message, code: ev.code });
          reject(new Error(message));
        });
      });
    });
  }

  /**
   * Routes a socket's messages and its close; a socket this client has let go of (replaced by
   * a resume) is ignored. `first` sees every message first and returns true when it took it.
   * @param {WebSocket} ws
   * @param {(msg: any) => boolean} first
   * @param {(ev: CloseEvent) => void} onClose
   */
  _wire(ws, first, onClose) {
    ws.addEventListener('message', (ev) => {
      if (ws !== this.ws) return;
      this._lastRx = Date.now();
      /** @type {any} */
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
      } catch {
        console.warn('kham: ignoring a non-JSON frame');
        return;
      }
      if (!msg || typeof msg.type !== 'string') return;
      if (!first(msg)) this._onMessage(msg);
    });
    ws.addEventListener('close', (ev) => {
      if (ws !== this.ws) return;
      this._stopPing();
      onClose(ev);
    });
  }

  /**
   * Starts sending `localStream` (its first audio and first video track). May be called before
   * admission: media starts when the server admits this participant. Without a stream, or for
   * an observer, the connection only receives.
   * @param {MediaStream|null} [localStream]
   * @returns {Promise<void>}
   */
  publish(localStream = null) {
    this._localStream = localStream;
    this._publishRequested = true;
    if (localStream) this._applyMuteToTracks();
    if (this.status === 'admitted') return this._enqueue(() => this._startMedia());
    return Promise.resolve();
  }

  /**
   * Shares a screen (a `getDisplayMedia` video track) as a second video with content priority;
   * a share already on is replaced. Needs media started (admitted, `publish` called).
   * @param {MediaStreamTrack} track
   */
  shareScreen(track) {
    return this._enqueue(async () => {
      const pc = this.pc;
      if (!pc || !this._offerSent) throw new Error('screen share before media started');
      this._share = { tr: await startShareSender(pc, track, this._share.tr), on: true, unanswered: true };
      await this._offerNow();
    });
  }

  /** Stops the own screen share (subscribers see its track go). */
  stopScreenShare() {
    return this._enqueue(async () => {
      const tr = this._share.tr;
      if (!this.pc || !tr || !this._share.on) return;
      this._share.on = false;
      this._share.unanswered = true;
      await stopShareSender(tr);
      await this._offerNow();
    });
  }

  /**
   * Offers again on the session (a share started or stopped). While an offer of either side
   * waits for its answer, the share's offer follows that answer (`_reofferIfNeeded`).
   */
  async _offerNow() {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'stable') return;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this._send(this._offerMsg(pc.localDescription ? pc.localDescription.sdp : offer.sdp));
  }

  /**
   * An `offer` message; once a share was started it names the share's mid (`screen`, empty
   * when stopped), so every later offer keeps the server's marking right.
   * @param {string|undefined} sdp
   */
  _offerMsg(sdp) {
    const tr = this._share.tr;
    if (!tr) return { type: 'offer', sdp };
    return { type: 'offer', sdp, screen: this._share.on && tr.mid !== null ? [tr.mid] : [] };
  }

  /** Admits a lobby entry (admit grant). @param {string} id */
  admit(id) {
    this._send({ type: 'admit', id });
  }

  /** Denies a lobby entry; its link stops working for this room. @param {string} id @param {string} [reason] */
  deny(id, reason) {
    this._send(reason ? { type: 'deny', id, reason } : { type: 'deny', id });
  }

  /** Removes a participant from the call; its link stops working. @param {string} id @param {string} [reason] */
  remove(id, reason) {
    this._send(reason ? { type: 'remove', id, reason } : { type: 'remove', id });
  }

  /**
   * Sends a chat message to everyone in the call, or (a doctor) `to` one lobby entry. The server
   * relays it back to every recipient, the sender included, as a `chat` event: show messages from
   * that event, in `seq` order. Returns false when it could not be sent (no socket).
   * @param {string} text
   * @param {string} [to]  a lobby entry's id
   * @throws {ChatError} `too_large` past MAX_CHAT_BYTES, `empty` for blank text
   */
  sendChat(text, to) {
    if (!String(text).trim()) throw new ChatError('empty', 'an empty chat message');
    if (new TextEncoder().encode(text).length > MAX_CHAT_BYTES) {
      throw new ChatError('too_large', `a chat message is at most ${MAX_CHAT_BYTES} bytes of UTF-8`);
    }
    return this._send(to ? { type: 'chat', text, to } : { type: 'chat', text });
  }

  /** Ends the consult for everyone (admit grant). */
  endConsult() {
    this._send({ type: 'end_consult' });
  }

  /**
   * Mutes or unmutes the own microphone (`audio`) or camera (`video`): the track is disabled
   * (silence / black frames at minimal bitrate) and the others are told.
   * @param {MediaKind} kind
   * @param {boolean} muted
   */
  setMuted(kind, muted) {
    this._muted[kind] = muted;
    this._applyMuteToTracks();
    if (kind === 'video') this._applyVideoMuteToEncodings();
    if (this.status === 'admitted') this._send({ type: 'mute', kind, muted });
  }

  /**
   * A muted camera sends nothing: its simulcast encodings are turned off (a disabled track
   * alone still sent 1.1-1.2 Mbit/s of black frames and padding in Chromium 148:
   * benches/browser/audio-cost.mjs), and the server's latest `publish_layers` (or the default
   * ladder) comes back on unmute.
   */
  _applyVideoMuteToEncodings() {
    const pc = this.pc;
    if (!pc) return;
    for (const tr of pc.getTransceivers()) {
      if (!tr.mid || tr.sender?.track?.kind !== 'video') continue;
      const mid = tr.mid;
      this._queueSenderJob('camera mute', async () => {
        const layers = this._publishLayers.get(mid) || SIMULCAST_ENCODINGS.map((e) => ({ rid: e.rid, active: true }));
        try {
          await applyPublishLayers(pc, mid, this._withVideoMute(layers), PUBLISH_DEFAULTS);
        } catch (err) {
          console.error('kham: could not apply the camera mute to the encodings', err);
        }
      });
    }
  }

  /**
   * Runs `job` after the sender changes queued before it: setParameters calls (dynacast, the
   * audio rate, the camera mute) go one at a time per connection.
   * @param {string} what @param {() => Promise<void>} job
   */
  _queueSenderJob(what, job) {
    this._layersQueue = this._layersQueue.then(job).catch((err) => {
      console.error(`kham: ${what} failed`, err);
    });
  }

  /** `layers` with every encoding off while the camera is muted. @param {any[]} layers */
  _withVideoMute(layers) {
    return this._muted.video ? layers.map((l) => ({ ...l, active: false })) : layers;
  }

  /** @param {MediaKind} kind */
  isMuted(kind) {
    return this._muted[kind];
  }

  /**
   * Audio only: asks the server to forward no video to this client (to save data), or video
   * again. The server answers with `video_state` (reason `audio_only`). Remembered and sent
   * after admission when chosen in the lobby.
   * @param {boolean} enabled
   */
  setAudioOnly(enabled) {
    this._audioOnly = !!enabled;
    if (this.status === 'admitted' && !this._unsupported.has('audio_only')) {
      this._send({ type: 'audio_only', enabled: this._audioOnly });
    }
  }

  isAudioOnly() {
    return this._audioOnly;
  }

  /**
   * Adaptive stream: reports the element's drawn size and visibility for the participant's
   * received video (`video_view`), so the server sends no more than it shows. Call again with a
   * new element to replace it; see views.js on hiding a paused video.
   * @param {string} participantId
   * @param {Element} element
   */
  observeVideo(participantId, element) {
    if (this.closed) return;
    if (!this._views) {
      this._views = new ViewReporter({
        videoMids: () => this._receivedVideoMids(),
        send: (views) => this.status === 'admitted' && !this._unsupported.has('video_view')
          && this._send({ type: 'video_view', views }),
      });
    }
    this._views.observe(participantId, element);
  }

  /** Stops reporting an element (its tile is gone). @param {Element} element */
  unobserveVideo(element) {
    if (this._views) this._views.unobserve(element);
  }

  /**
   * The last video state of a participant's video (from `video_state`), or null.
   * @param {string} participantId
   * @returns {VideoState|null}
   */
  videoStateOf(participantId) {
    for (const v of this.videoStates.values()) {
      const owner = v.participant || this.participantForMid(v.mid);
      if (owner === participantId) return v;
    }
    return null;
  }

  /**
   * Leaves the call. Resolves once the server closed the socket (or after a short timeout).
   * Local tracks are not stopped: the stream belongs to the caller.
   * @returns {Promise<void>}
   */
  leave() {
    if (this.closed) return Promise.resolve();
    this._leaving = true;
    const ws = this.ws;
    this._send({ type: 'leave' });
    this._closePc();
    return new Promise((resolve) => {
      const done = () => {
        this._finish({ reason: 'left', message: '', code: CLOSE_CODES.NORMAL });
        resolve();
      };
      if (!ws || ws.readyState === WebSocket.CLOSED) return done();
      const timer = setTimeout(() => {
        ws.close(CLOSE_CODES.NORMAL);
        done();
      }, LEAVE_CLOSE_TIMEOUT_MS);
      ws.addEventListener('close', () => {
        clearTimeout(timer);
        done();
      });
    });
  }

  /** The remote participant a receive transceiver's mid belongs to. @param {string} mid */
  participantForMid(mid) {
    const info = this._trackInfo.get(mid);
    return info ? info.participant : null;
  }

  // ---- incoming messages ----

  /** @param {Welcome} msg */
  _onWelcome(msg) {
    if (msg.protocol !== PROTOCOL_VERSION) {
      console.warn(`kham: server speaks protocol ${msg.protocol}, this SDK ${PROTOCOL_VERSION}`);
    }
    this.me = msg.me;
    this.room = msg.room;
    this.participants = new Map((msg.participants || []).map((p) => [p.id, p]));
    this.status = msg.status;
    this._takeIceServers(msg);
    this._resumeToken = typeof msg.resume_token === 'string' ? msg.resume_token : null;
    this._graceMs = Number(msg.reconnect_grace_ms) || 0;
    this._startPing();
    this._emit('welcome', msg);
    this._emit('status', { status: msg.status });
    if (msg.status === 'admitted') this._onAdmitted();
  }

  _onAdmitted() {
    // Mute state chosen in the preview or the lobby is announced once it is allowed.
    for (const kind of /** @type {MediaKind[]} */ (['audio', 'video'])) {
      if (this._muted[kind]) this._send({ type: 'mute', kind, muted: true });
    }
    if (this._audioOnly) this._send({ type: 'audio_only', enabled: true });
    if (this._views) this._views.changed();
    if (this._publishRequested) this._enqueue(() => this._startMedia());
  }

  /**
   * TURN servers handed out with `msg` (fresh credentials each time): kept for the peer
   * connection, and applied to one that exists (an ICE restart then uses them).
   * @param {any} msg
   */
  _takeIceServers(msg) {
    if (!Array.isArray(msg.ice_servers) || msg.ice_servers.length === 0) return;
    this._iceServers = msg.ice_servers.map((/** @type {any} */ s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
    if (this.pc) {
      try {
        this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: this._iceServers });
      } catch (err) {
        console.warn('kham: could not apply the TURN servers', err);
      }
    }
  }

  /** @param {any} msg */
  _onMessage(msg) {
    this._takeIceServers(msg);
    switch (msg.type) {
      case 'admitted':
        this.status = 'admitted';
        for (const p of msg.participants || []) this.participants.set(p.id, p);
        this._emit('status', { status: 'admitted' });
        this._emit('admitted', { participants: msg.participants || [] });
        this._onAdmitted();
        break;
      case 'lobby':
        this.canAdmit = true;
        this.lobby = (msg.entries || []).map(withWaitingSince);
        this._emit('lobby', { entries: this.lobby });
        break;
      case 'participant_joined':
        this.participants.set(msg.participant.id, msg.participant);
        this._emit('participantjoined', { participant: msg.participant });
        break;
      case 'participant_updated':
        if (this.me && msg.participant.id === this.me.id) {
          this.me = msg.participant;
        } else {
          this.participants.set(msg.participant.id, msg.participant);
        }
        this._emit('participantupdated', { participant: msg.participant });
        break;
      case 'participant_left':
        this.participants.delete(msg.id);
        this._dropParticipantTracks(msg.id);
        this._emit('participantleft', { id: msg.id, reason: msg.reason });
        break;
      case 'answer':
        this._enqueue(() => this._onAnswer(msg.sdp));
        break;
      case 'offer':
        this._enqueue(() => this._onServerOffer(msg.sdp, msg.tracks, msg.offer_id));
        break;
      case 'tracks':
        this._enqueue(async () => {
          this._setTrackInfo(msg.tracks);
          this._reconcileTracks();
        });
        break;
      case 'denied':
      case 'removed':
      case 'ended':
        // The server closes right after; remember why.
        this._pendingClose = { reason: msg.type, message: msg.reason || '' };
        break;
      case 'error':
        if (msg.code === 'unknown_type' && this._optionalUnsupported(String(msg.message || ''))) break;
        // Our new offer crossed a server offer: that one is answered (with the packet time).
        if (msg.code === 'glare') {
          this._reofferIfNeeded();
          break;
        }
        console.warn(`kham: server error ${msg.code}: ${msg.message}`);
        this._emit('error', { code: msg.code, message: msg.message });
        break;
      case 'pong':
        break;
      case 'chat':
        if (typeof msg.text === 'string' && typeof msg.seq === 'number') {
          this._emit('chat', /** @type {ChatMessage} */ (msg));
        }
        break;
      case 'video_state': {
        /** @type {VideoState[]} */
        const tracks = Array.isArray(msg.tracks) ? msg.tracks : [];
        this.videoStates = new Map(tracks.map((v) => [String(v.mid), v]));
        this._emit('videostate', { tracks });
        break;
      }
      case 'quality': {
        /** @type {ParticipantQuality[]} */
        const list = Array.isArray(msg.participants) ? msg.participants : [];
        for (const q of list) if (q && typeof q.id === 'string') this.quality.set(q.id, q.quality);
        this._emit('quality', { participants: list });
        break;
      }
      case 'publish_layers':
        this._onPublishLayers(String(msg.mid), Array.isArray(msg.layers) ? msg.layers : []);
        break;
      case 'audio_rate':
        this._onAudioRate(String(msg.mid), msg.max_bitrate);
        this._onPacketTime(String(msg.mid), msg.ptime);
        break;
      default:
        console.warn(`kham: ignoring unknown message type ${msg.type}`);
    }
  }

  /**
   * An older server does not know the adaptive messages (`video_view`, `audio_only`): stop
   * sending that type and keep the refusal from the app (no error shown every 250 ms).
   * @param {string} message  the server's error text, naming the type
   */
  _optionalUnsupported(message) {
    for (const type of ['video_view', 'audio_only']) {
      if (!message.includes(`"${type}"`)) continue;
      if (!this._unsupported.has(type)) console.info(`kham: the server does not support ${type}; not sent any more`);
      this._unsupported.add(type);
      return true;
    }
    return false;
  }

  /** @param {CloseEvent} ev */
  _onSocketClose(ev) {
    /** @type {Record<number, CloseReason>} */
    const byCode = {
      [CLOSE_CODES.DENIED]: 'denied',
      [CLOSE_CODES.REMOVED]: 'removed',
      [CLOSE_CODES.ENDED]: 'ended',
      [CLOSE_CODES.REPLACED]: 'replaced',
    };
    const pending = this._pendingClose;
    const final = pending || byCode[ev.code] || this._leaving;
    if (!final && (ev.code === CLOSE_CODES.NORMAL || ev.code === CLOSE_CODES.RESUME_FAILED)) {
      // The server gave this participant up (its connection stayed away past the grace).
      this._rejoin();
      return;
    }
    if (!final && this._resumeToken) {
      this._resume();
      return;
    }
    /** @type {CloseReason} */
    let reason;
    if (pending) reason = /** @type {CloseReason} */ (pending.reason);
    else if (byCode[ev.code]) reason = byCode[ev.code];
    else if (this._leaving) reason = 'left';
    else reason = 'connection_lost';
    const message = (pending && pending.message) || ev.reason || '';
    this._finish({ reason, message, code: ev.code });
  }

  // ---- reconnecting ----

  /**
   * The socket dropped: resume the same session on a new one, backing off, until the server's
   * grace runs out; then join anew. The peer connection stays: media may well still flow.
   */
  async _resume() {
    if (this.reconnecting || this.closed) return;
    this.reconnecting = true;
    const since = Date.now();
    this._emit('reconnecting', { since });
    const grace = this._graceMs || 30_000;
    for (let attempt = 0; !this.closed && !this._leaving; attempt += 1) {
      const wait = RESUME_DELAYS_MS[Math.min(attempt, RESUME_DELAYS_MS.length - 1)];
      if (Date.now() + wait - since > grace) break;
      await sleep(wait);
      if (this.closed || this._leaving) return;
      const result = await this._tryResume();
      if (result === 'resumed') {
        this.reconnecting = false;
        this._emit('reconnected', { resumed: true });
        this._checkIce();
        return;
      }
      if (result === 'refused') break;
    }
    if (!this.closed && !this._leaving) await this._rejoin();
  }

  /**
   * One resume attempt on a new socket.
   * @returns {Promise<'resumed'|'refused'|'failed'>}
   */
  _tryResume() {
    const opts = /** @type {ConnectOptions} */ (this._opts);
    const me = /** @type {Participant} */ (this.me);
    const ws = new WebSocket(wsUrl(opts.url, opts.room, opts.token, { resume: me.id, resume_token: String(this._resumeToken) }));
    this.ws = ws;
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this._abandonSocket();
        resolve('failed');
      }, RESUME_TIMEOUT_MS);
      this._wire(ws, (msg) => {
        if (done) return false;
        if (msg.type === 'resumed') {
          done = true;
          clearTimeout(timer);
          this._onResumed(msg);
          resolve('resumed');
          return true;
        }
        // The refusal's `error` comes before its close (4006).
        return msg.type === 'error';
      }, (ev) => {
        if (done) {
          this._onSocketClose(ev);
          return;
        }
        done = true;
        clearTimeout(timer);
        resolve(ev.code === CLOSE_CODES.RESUME_FAILED ? 'refused' : 'failed');
      });
    });
  }

  /**
   * Back on a new socket as the same participant: reconcile what was missed from the snapshot,
   * and tell the server again what it may have missed of ours.
   * @param {any} msg
   */
  _onResumed(msg) {
    this.me = msg.me;
    this._takeIceServers(msg);
    const before = this.participants;
    const now = new Map((msg.participants || []).map((/** @type {Participant} */ p) => [p.id, p]));
    this.participants = now;
    for (const id of before.keys()) {
      if (now.has(id)) continue;
      this._dropParticipantTracks(id);
      this._emit('participantleft', { id, reason: 'left' });
    }
    for (const p of now.values()) {
      this._emit(before.has(p.id) ? 'participantupdated' : 'participantjoined', { participant: p });
    }
    this._startPing();
    if (msg.status !== this.status) {
      this.status = msg.status;
      this._emit('status', { status: msg.status });
      if (msg.status === 'admitted') {
        this._emit('admitted', { participants: msg.participants || [] });
        this._onAdmitted();
        return;
      }
    }
    if (this.status === 'admitted') {
      for (const kind of /** @type {MediaKind[]} */ (['audio', 'video'])) {
        this._send({ type: 'mute', kind, muted: this._muted[kind] });
      }
      if (!this._unsupported.has('audio_only')) this._send({ type: 'audio_only', enabled: this._audioOnly });
      if (this._views) this._views.changed();
    }
  }

  /**
   * The server gave the old session up (or it could not be resumed): join again as a new
   * participant with the same token and start media again; the app sees everyone leave and a
   * new `welcome`.
   */
  async _rejoin() {
    if (this.closed || this._leaving) return;
    if (!this.reconnecting) {
      this.reconnecting = true;
      this._emit('reconnecting', { since: Date.now() });
    }
    for (const id of [...this.participants.keys()]) {
      this.participants.delete(id);
      this._dropParticipantTracks(id);
      this._emit('participantleft', { id, reason: 'connection_lost' });
    }
    this._closePc();
    this._trackInfo = new Map();
    this._offerSent = false;
    /** A new offer for a packet time is queued. */
    this._reofferQueued = false;
    this._resumeToken = null;
    this.videoStates = new Map();
    try {
      await this._join(true);
    } catch {
      return; // finished as connection_lost
    }
    this.reconnecting = false;
    this._emit('reconnected', { resumed: false });
  }

  /** Lets go of the current socket without ending the session (a resume follows). */
  _abandonSocket() {
    const ws = this.ws;
    this.ws = null;
    this._stopPing();
    if (!ws) return;
    try {
      ws.close(CLOSE_CODES.ABANDONED);
    } catch {
      // already closing
    }
  }

  /** The socket stopped answering: give it up and resume on a new one. */
  _socketLost() {
    // A server without resumes (no resume_token): nothing better than waiting on this socket.
    if (this.reconnecting || this.closed || this._leaving || !this._resumeToken) return;
    this._abandonSocket();
    this._resume();
  }

  /** The browser says the network changed (`online`, a connection type change). */
  _networkChanged() {
    if (this.closed || this._leaving) return;
    if (this.reconnecting) return;
    // The old socket's TCP connection may be bound to the old network: check it answers.
    this._probeSocket().then((alive) => {
      if (!alive) this._socketLost();
      else this._askIceRestart(true);
    });
  }

  /**
   * Whether the socket answers a ping within 1.5 s.
   * @returns {Promise<boolean>}
   */
  _probeSocket() {
    const sentAt = Date.now();
    this._pingId += 1;
    if (!this._send({ type: 'ping', id: this._pingId })) return Promise.resolve(false);
    return new Promise((resolve) => {
      setTimeout(() => resolve(this._lastRx >= sentAt), 1_500);
    });
  }

  /** ICE state changes: trouble that lasts gets an ICE restart (or a resume first). */
  _onIceState() {
    const pc = this.pc;
    if (!pc) return;
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') {
      if (this._iceTimer !== null) clearTimeout(this._iceTimer);
      this._iceTimer = null;
      return;
    }
    if ((state === 'disconnected' || state === 'failed') && this._iceTimer === null) {
      this._iceTimer = setTimeout(() => {
        this._iceTimer = null;
        this._iceTrouble();
      }, state === 'failed' ? 0 : ICE_TROUBLE_MS);
    }
  }

  /** ICE is down: if the socket answers, ask for a restart; if not, resume it first. */
  async _iceTrouble() {
    const pc = this.pc;
    if (!pc || this.closed || this._leaving) return;
    const state = pc.iceConnectionState;
    if (state !== 'disconnected' && state !== 'failed') return;
    if (!this.reconnecting) {
      if (await this._probeSocket()) this._askIceRestart(false);
      else this._socketLost();
    }
    // Still down later: check again (a restart offer may have been lost, or the path is still gone).
    this._iceTimer = setTimeout(() => {
      this._iceTimer = null;
      this._iceTrouble();
    }, ICE_RESTART_EVERY_MS);
  }

  /** After a resume: ICE that went down meanwhile (or a silent path) gets its restart now. */
  _checkIce() {
    const pc = this.pc;
    const owed = this._restartAfterResume;
    this._restartAfterResume = false;
    if (pc && (owed || pc.iceConnectionState === 'disconnected' || pc.iceConnectionState === 'failed')) {
      this._askIceRestart(true);
    }
  }

  /** Starts watching the media path of the current peer connection (PATH_CHECK_MS). */
  _startPathWatch() {
    this._stopPathWatch();
    const now = Date.now();
    this._pathBytes = 0;
    this._pathRxAt = now;
    this._pathSteadySince = now;
    this._pathTripped = false;
    this._pathTimer = setInterval(() => { this._watchPath(); }, PATH_CHECK_MS);
  }

  _stopPathWatch() {
    if (this._pathTimer !== null) clearInterval(this._pathTimer);
    this._pathTimer = null;
  }

  /** One check of the media path: a steady flow that stops is a path gone (see SILENT_PATH_MS). */
  async _watchPath() {
    const pc = this.pc;
    if (!pc || this.closed || this._pathBusy) return;
    this._pathBusy = true;
    try {
      let bytes = 0;
      (await pc.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type === 'transport') bytes += s.bytesReceived || 0;
      });
      const now = Date.now();
      if (bytes > this._pathBytes) {
        // A gap longer than a couple of checks starts the steady time again.
        if (now - this._pathRxAt > 2.5 * PATH_CHECK_MS) this._pathSteadySince = now;
        this._pathBytes = bytes;
        this._pathRxAt = now;
        this._pathTripped = false;
        return;
      }
      const ice = pc.iceConnectionState;
      const steady = this._pathRxAt - this._pathSteadySince >= STEADY_MS;
      if (this._pathTripped || !steady || now - this._pathRxAt < SILENT_PATH_MS) return;
      if (ice !== 'connected' && ice !== 'completed') return; // _onIceState handles the rest
      this._pathTripped = true;
      if (this.status !== 'admitted' || this._leaving) return;
      // The socket most likely went with the path: resume it on the current network, then
      // restart ICE (a server without resumes gets the restart on this socket).
      if (this._resumeToken && !this.reconnecting) {
        this._restartAfterResume = true;
        this._socketLost();
      } else if (!this.reconnecting) {
        this._askIceRestart(true);
      } else {
        this._restartAfterResume = true;
      }
    } catch {
      // A closed peer connection: nothing to watch.
    } finally {
      this._pathBusy = false;
    }
  }

  /**
   * Asks the server for an ICE restart (it answers with an `offer`), at most once per
   * ICE_RESTART_EVERY_MS unless `now`.
   * @param {boolean} now
   */
  _askIceRestart(now) {
    if (!this.pc || this.status !== 'admitted') return;
    const t = Date.now();
    if (!now && t - this._iceAskedAt < ICE_RESTART_EVERY_MS) return;
    this._iceAskedAt = t;
    this._send({ type: 'ice_restart' });
  }

  // ---- media ----

  async _startMedia() {
    if (this.pc || this.closed) return;
    /** @type {RTCConfiguration} */
    const config = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers: this._iceServers };
    const policy = this._opts && this._opts.iceTransportPolicy;
    if (policy) config.iceTransportPolicy = policy;
    const pc = new RTCPeerConnection(config);
    this.pc = pc;
    pc.addEventListener('connectionstatechange', () => {
      this._emit('connectionstate', { state: pc.connectionState });
    });
    pc.addEventListener('iceconnectionstatechange', () => this._onIceState());
    this._startPathWatch();
    // Server offers bring receive transceivers; surface their tracks once the mapping is known.
    pc.addEventListener('track', () => this._reconcileTracks());

    const stream = this._localStream;
    const receiveOnly = !stream || (this.me && this.me.role === 'observer');
    if (receiveOnly) {
      pc.addTransceiver('audio', { direction: 'recvonly' });
    } else {
      const audio = stream.getAudioTracks()[0] || null;
      const video = stream.getVideoTracks()[0] || null;
      pc.addTransceiver(audio || 'audio', { direction: 'sendonly', streams: [stream] });
      pc.addTransceiver(video || 'video', {
        direction: 'sendonly',
        streams: [stream],
        sendEncodings: SIMULCAST_ENCODINGS.map((e) => ({ ...e })),
      });
      if (video && 'contentHint' in video) video.contentHint = 'motion';
    }
    this._openVitalsChannels(pc);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    // A camera muted before media started (in the lobby) starts with its encodings off.
    if (this._muted.video) this._applyVideoMuteToEncodings();
    // ICE-lite server and host candidates: no need to wait for gathering; the server learns
    // the browser's address from its connectivity checks (peer-reflexive).
    this._send({ type: 'offer', sdp: pc.localDescription ? pc.localDescription.sdp : offer.sdp });
    this._offerSent = true;
  }

  /**
   * The two vital-sign channels, opened with the first offer (in-band): waveforms unordered
   * without retransmission, numerics reliable. The server forwards each frame to the others
   * holding the `health_data` grant, tagged with the publisher's id.
   * @param {RTCPeerConnection} pc
   */
  _openVitalsChannels(pc) {
    const wave = pc.createDataChannel(VITALS_WAVE_LABEL, { ordered: false, maxRetransmits: 0 });
    const num = pc.createDataChannel(VITALS_NUM_LABEL);
    for (const ch of [wave, num]) {
      ch.binaryType = 'arraybuffer';
      ch.addEventListener('message', (ev) => this._onVitalsMessage(ev.data));
    }
    // Still images (images.js): reliable and ordered, chunked, acknowledged end to end.
    const image = pc.createDataChannel(IMAGE_LABEL);
    image.binaryType = 'arraybuffer';
    image.addEventListener('message', (ev) => this._onImageMessage(ev.data));
    this._vitalsChannels = { wave, num, image };
  }

  /** @param {unknown} data */
  _onImageMessage(data) {
    if (!(data instanceof ArrayBuffer)) return;
    const b = new Uint8Array(data);
    // Forwarded: [1][kind | 0x80][len][source id][rest]
    if (b.length < 3 || b[0] !== 1 || !(b[1] & 0x80) || b.length < 3 + b[2]) return;
    const participantId = new TextDecoder().decode(b.subarray(3, 3 + b[2]));
    const frame = new Uint8Array(b.length - 1 - b[2]);
    frame[0] = 1;
    frame[1] = b[1] & 0x7f;
    frame.set(b.subarray(3 + b[2]), 2);
    this._emit('imageframe', { participantId, frame });
  }

  /**
   * Sends a frame on the image channel (images.js builds them). False when not open.
   * @param {Uint8Array<ArrayBuffer>} frame
   */
  sendImageFrame(frame) {
    const ch = this._vitalsChannels && this._vitalsChannels.image;
    if (!ch || ch.readyState !== 'open') return false;
    ch.send(frame);
    return true;
  }

  /** Bytes queued on the image channel, not yet sent. */
  imageBuffered() {
    const ch = this._vitalsChannels && this._vitalsChannels.image;
    return ch ? ch.bufferedAmount : 0;
  }

  /** @param {unknown} data */
  _onVitalsMessage(data) {
    if (!(data instanceof ArrayBuffer)) return;
    const receivedAt = performance.timeOrigin + performance.now();
    try {
      const { source, frame } = decodeForwarded(data);
      this._emit('vitals', { participantId: source, frame, receivedAt });
    } catch (err) {
      // A frame of another version or a broken one: dropped, the others go on. Never logged
      // with its content (health data).
      this._vitalsDropped += 1;
    }
  }

  /**
   * Sends one vitals frame (vitals-frame.js: encodeNumerics / encodeWave) to the others: a
   * waveform on the unordered channel (dropped when the channel is backed up), numerics on the
   * reliable one. False when it was not sent (no channel open yet, too big, backed up).
   * @param {Uint8Array<ArrayBuffer>} frame
   */
  sendVitals(frame) {
    const chans = this._vitalsChannels;
    if (!chans || frame.length < 2 || frame.length > MAX_FRAME) return false;
    const ch = frame[1] === KIND_WAVE ? chans.wave : frame[1] === KIND_NUMERICS ? chans.num : null;
    if (!ch || ch.readyState !== 'open') return false;
    if (ch === chans.wave && ch.bufferedAmount > WAVE_MAX_BUFFERED) return false;
    ch.send(frame);
    return true;
  }

  /** Whether the vital-sign channels are open (frames can be sent). */
  vitalsReady() {
    const c = this._vitalsChannels;
    return !!c && c.wave.readyState === 'open' && c.num.readyState === 'open';
  }

  /** @param {string} sdp */
  async _onAnswer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') {
      console.warn('kham: unexpected answer');
      return;
    }
    await this._setRemote('answer', sdp);
    this._share.unanswered = false;
    this._reconcileTracks();
    this._reofferIfNeeded();
  }

  /**
   * Applies a remote description with the packet times the server asked for written in.
   * @param {'offer'|'answer'} type @param {string} sdp
   */
  async _setRemote(type, sdp) {
    const pc = this.pc;
    if (!pc) return;
    const wanted = new Map(this._ptimeWanted);
    await pc.setRemoteDescription({ type, sdp: withPacketTime(sdp, wanted) });
    this._ptimeApplied = wanted;
  }

  /** True when a packet time asked for is not in the applied remote description yet. */
  _ptimePending() {
    const all = new Set([...this._ptimeWanted.keys(), ...this._ptimeApplied.keys()]);
    for (const mid of all) {
      if ((this._ptimeWanted.get(mid) || 20) !== (this._ptimeApplied.get(mid) || 20)) return true;
    }
    return false;
  }

  /**
   * A new packet time takes a renegotiation (Chromium ignores \`ptime\` in setParameters:
   * benches/browser/audio-ptime.mjs): the client offers again on its session and writes the
   * packet time into the server's answer. Queued behind any SDP work; a server offer that
   * crosses it (\`glare\`) is answered with the packet time written in, which is enough.
   */
  _reofferIfNeeded() {
    const needed = () => this._ptimePending() || this._share.unanswered;
    if (!needed() || this._reofferQueued) return;
    this._reofferQueued = true;
    this._enqueue(async () => {
      this._reofferQueued = false;
      const pc = this.pc;
      if (!pc || !this._offerSent || pc.signalingState !== 'stable' || !needed()) return;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this._send(this._offerMsg(pc.localDescription ? pc.localDescription.sdp : offer.sdp));
    });
  }

  /** @param {string} sdp @param {TrackInfo[]} tracks @param {number|undefined} offerId */
  async _onServerOffer(sdp, tracks, offerId) {
    const pc = this.pc;
    if (!pc) {
      console.warn('kham: server offer before the own offer; ignored');
      return;
    }
    this._setTrackInfo(tracks);
    // In have-local-offer (our own new offer crossed this one) Chromium rolls ours back.
    await this._setRemote('offer', sdp);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const reply = { type: 'answer', sdp: pc.localDescription ? pc.localDescription.sdp : answer.sdp };
    this._send(typeof offerId === 'number' ? { ...reply, offer_id: offerId } : reply);
    this._reconcileTracks();
    this._reofferIfNeeded();
  }

  /** @param {TrackInfo[]|undefined} tracks */
  _setTrackInfo(tracks) {
    if (!Array.isArray(tracks)) return;
    this._trackInfo = new Map(tracks.map((t) => [String(t.mid), t]));
    if (this._views) this._views.changed();
  }

  /** The received video mids the server currently maps, with their participant. */
  _receivedVideoMids() {
    const out = [];
    for (const [mid, info] of this._trackInfo) {
      if (info.kind === 'video' && info.active !== false) out.push({ mid, participantId: info.participant });
    }
    return out;
  }

  /**
   * Dynacast: switches the own video's simulcast encodings on or off and applies the limits
   * the server asks for (the video floor, the encoder following the best viewer). One
   * setParameters call at a time, in message order; failures are logged, never thrown (the
   * server does not depend on being obeyed).
   * @param {string} mid
   * @param {import('./layers.js').LayerWish[]} layers
   */
  _onPublishLayers(mid, layers) {
    if (Array.isArray(layers)) this._publishLayers.set(mid, layers);
    const job = async () => {
      /** @type {{rid: string, active: boolean}[]|null} */
      let encodings = null;
      try {
        const wanted = Array.isArray(layers) ? this._withVideoMute(layers) : layers;
        if (this.pc) encodings = await applyPublishLayers(this.pc, mid, wanted, PUBLISH_DEFAULTS);
        else console.warn('kham: publish_layers before media started; ignored');
      } catch (err) {
        console.error('kham: could not set the simulcast layers', err);
      }
      this._emit('publishlayers', { mid, layers, encodings });
    };
    this._queueSenderJob('publishlayers listener', job);
  }

  /**
   * The server's packet time for this client's audio `mid` (absent or not 40/60: the default).
   * @param {string} mid @param {unknown} ptime
   */
  _onPacketTime(mid, ptime) {
    const ms = ptime === 40 || ptime === 60 ? ptime : 20;
    if (ms === 20) this._ptimeWanted.delete(mid);
    else this._ptimeWanted.set(mid, ms);
    this._emit('packettime', { mid, ptime: ms });
    this._reofferIfNeeded();
  }

  /**
   * Applies the server's `audio_rate` to this client's audio sender (queued behind dynacast's
   * setParameters calls: one at a time per connection).
   * @param {string} mid
   * @param {unknown} maxBitrate
   */
  _onAudioRate(mid, maxBitrate) {
    const job = async () => {
      /** @type {number|undefined|null} */
      let applied = null;
      try {
        if (this.pc) applied = await applyAudioRate(this.pc, mid, maxBitrate);
        else console.warn('kham: audio_rate before media started; ignored');
      } catch (err) {
        console.error('kham: could not set the audio rate', err);
      }
      this._emit('audiorate', { mid, maxBitrate, applied });
    };
    this._queueSenderJob('audiorate listener', job);
  }

  /**
   * Brings the surfaced tracks in line with the transceivers and the server's mid mapping:
   * emits `trackremoved` for a mid that went away, was stopped, turned inactive or changed hands,
   * and `track` for a receiving mid that is newly mapped to a participant.
   */
  _reconcileTracks() {
    const pc = this.pc;
    if (!pc) return;
    /** @type {Map<string, {participantId: string, kind: MediaKind, track: MediaStreamTrack, screen: boolean}>} */
    const wanted = new Map();
    for (const tr of pc.getTransceivers()) {
      const mid = tr.mid;
      if (mid === null || tr.currentDirection === 'stopped' || tr.direction === 'stopped') continue;
      const info = this._trackInfo.get(mid);
      if (!info || info.active === false) continue;
      if (tr.currentDirection !== 'recvonly' && tr.currentDirection !== 'sendrecv') continue;
      const track = tr.receiver.track;
      if (!track || track.readyState === 'ended') continue;
      wanted.set(mid, { participantId: info.participant, kind: info.kind, track, screen: info.screen === true });
    }
    for (const [mid, cur] of this._surfaced) {
      const next = wanted.get(mid);
      if (!next || next.participantId !== cur.participantId || next.track !== cur.track || next.screen !== cur.screen) {
        this._surfaced.delete(mid);
        this._emit('trackremoved', this._trackDetail(mid, cur));
      }
    }
    for (const [mid, next] of wanted) {
      if (this._surfaced.has(mid)) continue;
      this._surfaced.set(mid, next);
      this._emit('track', this._trackDetail(mid, next));
    }
  }

  /** @param {string} participantId */
  _dropParticipantTracks(participantId) {
    for (const [mid, cur] of this._surfaced) {
      if (cur.participantId !== participantId) continue;
      this._surfaced.delete(mid);
      this._emit('trackremoved', this._trackDetail(mid, cur));
    }
  }

  /**
   * @param {string} mid
   * @param {{participantId: string, kind: MediaKind, track: MediaStreamTrack, screen: boolean}} entry
   * @returns {TrackDetail}
   */
  _trackDetail(mid, entry) {
    return { ...entry, mid, stream: this.streamOf(entry.participantId) };
  }

  /**
   * A fresh MediaStream with the live remote tracks of a participant (audio and video together,
   * so one <video> element plays both).
   * @param {string} participantId
   */
  streamOf(participantId) {
    const tracks = [];
    for (const s of this._surfaced.values()) {
      if (s.participantId === participantId && !s.screen) tracks.push(s.track);
    }
    return new MediaStream(tracks);
  }

  /**
   * A participant's screen share as a MediaStream, or null when it shares nothing.
   * @param {string} participantId
   */
  shareOf(participantId) {
    for (const s of this._surfaced.values()) {
      if (s.participantId === participantId && s.screen) return new MediaStream([s.track]);
    }
    return null;
  }

  _applyMuteToTracks() {
    const s = this._localStream;
    if (!s) return;
    for (const t of s.getAudioTracks()) t.enabled = !this._muted.audio;
    for (const t of s.getVideoTracks()) t.enabled = !this._muted.video;
  }

  _closePc() {
    this._share = { tr: null, on: false, unanswered: false };
    this._publishLayers.clear();
    this._ptimeWanted.clear();
    this._ptimeApplied.clear();
    this._stopPathWatch();
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    this._vitalsChannels = null;
    for (const [mid, cur] of this._surfaced) {
      this._surfaced.delete(mid);
      this._emit('trackremoved', this._trackDetail(mid, cur));
    }
  }

  // ---- plumbing ----

  /** @param {() => Promise<void>} job */
  _enqueue(job) {
    const run = this._queue.then(job);
    this._queue = run.catch((err) => {
      console.error('kham: media negotiation failed', err);
      this._emit('error', { code: 'client_media', message: String(err && err.message ? err.message : err) });
    });
    return run;
  }

  /** @param {object} msg */
  _send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  _startPing() {
    this._stopPing();
    this._lastRx = Date.now();
    this._pingTimer = setInterval(() => {
      // Nothing at all (not even the pongs) for a while: the socket is dead though not closed
      // (a network switch leaves the old TCP connection hanging).
      if (this._resumeToken && Date.now() - this._lastRx > SILENT_SOCKET_MS) {
        this._socketLost();
        return;
      }
      this._pingId += 1;
      this._send({ type: 'ping', id: this._pingId });
    }, PING_INTERVAL_MS);
  }

  _stopPing() {
    if (this._pingTimer !== null) clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  /** @param {ClosedDetail} detail */
  _finish(detail) {
    if (this.closed) return;
    this.closed = true;
    this.reconnecting = false;
    this._stopPing();
    if (this._iceTimer !== null) clearTimeout(this._iceTimer);
    this._iceTimer = null;
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onOnline);
    const conn = typeof navigator !== 'undefined' && /** @type {any} */ (navigator).connection;
    if (conn && conn.removeEventListener) conn.removeEventListener('change', this._onOnline);
    if (this._views) this._views.dispose();
    this._views = null;
    this._closePc();
    this.status = null;
    this._emit('closed', detail);
  }

  /** @param {string} type @param {any} detail */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Adds the local start time of a lobby wait. `waiting_since_ms` is the time waited so far
 * (crates/proto); a value that looks like a unix timestamp (after 2001) is taken as one.
 * @param {LobbyEntry} e
 * @returns {LobbyEntry}
 */
function withWaitingSince(e) {
  const v = Number(e.waiting_since_ms) || 0;
  return { ...e, waitingSince: v > 1e12 ? v : Date.now() - v };
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Why the server refused a WebSocket URL: the `error` code of its JSON reply to a plain GET
 * (`expired_token`, `wrong_room`, `revoked_token`, `room_full`, `room_ended`, ...), or '' when
 * the server could not be reached.
 * @param {string} url
 * @returns {Promise<string>}
 */
export async function refusalReason(url) {
  try {
    const u = new URL(url);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    const res = await fetch(u.toString(), { cache: 'no-store' });
    const body = await res.json().catch(() => null);
    return body && typeof body.error === 'string' ? body.error : '';
  } catch {
    return '';
  }
}

/**
 * The signaling URL for a room and token.
 * @param {string|undefined} base  http(s)://host, ws(s)://host or .../ws; default: this page's host
 * @param {string} room
 * @param {string} token
 * @param {{resume: string, resume_token: string}} [resume]  a resume of an earlier session
 */
export function wsUrl(base, room, token, resume) {
  let u;
  if (base) {
    u = new URL(base, typeof location !== 'undefined' ? location.href : undefined);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (!u.pathname.endsWith('/ws')) u.pathname = u.pathname.replace(/\/?$/, '/ws');
  } else {
    u = new URL('/ws', location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  }
  u.search = new URLSearchParams(resume ? { room, token, ...resume } : { room, token }).toString();
  u.hash = '';
  return u.toString();
}
