// The kham web client page (/join?room=R&token=T): device check, lobby, call, end screens.
// All signaling and media logic is in the SDK (/sdk/kham.js); this file wires it to the DOM.
import { KhamClient } from '/sdk/kham.js';
import { byId } from './dom.js';
import { applyI18n, getLang, setLang, t } from './i18n.js';
import { takeJoinLink } from './link.js';
import { openLocalMedia, stopStream, attachStream } from './media.js';
import { showScreen, showEnded, renderEnded } from './screens.js';
import { renderLobby, relabelLobby } from './lobby.js';
import {
  setSelf, addParticipant, updateParticipant, removeParticipant, setRemoteStream,
  relabelTiles, clearTiles, setRemoveHandler, setVideoWatcher,
} from './tiles.js';
import { setQualities } from './quality.js';
import { setVideoStates, setAudioOnlyView } from './paused.js';
import { makeToggle, makeAction, ICONS } from './controls.js';
import { confirmAction } from './confirm.js';
import { showToast } from './toast.js';
import './queue-strings.js';
import { QueueSocket, takeQueueToken } from './queue-socket.js';
import { startStation, renderStation } from './station.js';
import { startDuty, renderDuty } from './duty.js';

/** @typedef {import('/sdk/kham.js').Participant} Participant */

const client = new KhamClient();
// For tests and debugging: the client and through it the RTCPeerConnection (`__kham.pc`).
/** @type {any} */ (window).__kham = client;
// Adaptive stream: the SDK reports each remote tile's size and visibility to the server.
setVideoWatcher({
  add: (id, video) => client.observeVideo(id, video),
  remove: (video) => client.unobserveVideo(video),
});

/** @type {MediaStream|null} */
let localStream = null;
/** @type {(() => void)[]} */
const relabelers = [];
let inCall = false;
/** @type {WakeLockSentinel|null} */
let wakeLock = null;

// ---- language ----

function relabelAll() {
  document.documentElement.lang = getLang();
  document.title = t('app.title');
  applyI18n(document);
  relabelTiles();
  relabelLobby();
  renderEnded();
  for (const fn of relabelers) fn();
}

byId('lang-toggle').addEventListener('click', () => {
  setLang(getLang() === 'vi' ? 'en' : 'vi');
  relabelAll();
});
byId('lang-toggle').setAttribute('lang', getLang() === 'vi' ? 'en' : 'vi');
relabelers.push(() => byId('lang-toggle').setAttribute('lang', getLang() === 'vi' ? 'en' : 'vi'));

// ---- mic / camera toggles, shared by the preview and the call ----

const micToggle = makeToggle({
  testid: 'mute', iconOn: ICONS.mic, iconOff: ICONS.micOff, labelOn: 'mute', labelOff: 'unmute',
  onChange: (off) => setMuted('audio', off),
});
const camToggle = makeToggle({
  testid: 'camera', iconOn: ICONS.cam, iconOff: ICONS.camOff, labelOn: 'camera.off', labelOff: 'camera.on',
  onChange: (off) => setMuted('video', off),
});
// Audio only: no remote video is received (saves mobile data); pressed = audio only.
const audioOnlyToggle = makeToggle({
  testid: 'audio-only', iconOn: ICONS.audioOnly, iconOff: ICONS.audioOnly,
  labelOn: 'audio_only', labelOff: 'audio_only', hint: 'audio_only.hint', pressedClass: 'ctl-active',
  onChange: (on) => {
    client.setAudioOnly(on);
    // Shown at once; the server confirms with video_state (and, when switched back, resumes).
    setAudioOnlyView(on);
    relabelTiles();
  },
});
relabelers.push(micToggle.relabel, camToggle.relabel, audioOnlyToggle.relabel);

/** @param {'audio'|'video'} kind @param {boolean} muted */
function setMuted(kind, muted) {
  client.setMuted(kind, muted);
  micToggle.set(client.isMuted('audio'));
  camToggle.set(client.isMuted('video'));
  byId('local-video').classList.toggle('off', client.isMuted('video'));
  if (inCall && client.me) drawSelf(client.me);
}

/** @param {Participant} me */
function drawSelf(me) {
  setSelf({ ...me, audio_muted: client.isMuted('audio'), video_muted: client.isMuted('video') }, localStream);
}

// ---- preview ----

async function startPreview() {
  showScreen('preview');
  const link = takeJoinLink();
  if (!link) {
    showEnded('bad_link');
    return;
  }
  const status = byId('preview-status');
  const identity = byId('preview-identity');
  const drawIdentity = () => {
    const c = link.claims;
    identity.textContent = c && c.name ? t('preview.joining_as', { name: c.name, role: t(`role.${c.role}`) }) : '';
  };
  drawIdentity();
  relabelers.push(drawIdentity);

  // An observer only watches: no camera or microphone is opened.
  const observer = !!link.claims && link.claims.role === 'observer';
  status.textContent = observer ? '' : t('preview.starting');
  const { stream } = observer ? { stream: null } : await openLocalMedia();
  localStream = stream;
  if (observer) byId('screen-preview').classList.add('observer');
  else byId('preview-toggles').append(micToggle.el, camToggle.el);
  const drawStatus = () => {
    status.textContent = stream || observer ? '' : t('preview.no_camera');
  };
  drawStatus();
  relabelers.push(drawStatus);
  attachStream(/** @type {HTMLVideoElement} */ (byId('local-video')), stream);
  if (!stream || stream.getAudioTracks().length === 0) micToggle.el.disabled = true;
  if (!stream || stream.getVideoTracks().length === 0) camToggle.el.disabled = true;

  const join = /** @type {HTMLButtonElement} */ (byId('join'));
  join.disabled = false;
  join.addEventListener('click', () => joinCall(link.room, link.token), { once: true });
}

/** @param {string} room @param {string} token */
async function joinCall(room, token) {
  const join = byId('join');
  join.setAttribute('disabled', '');
  join.removeAttribute('data-i18n');
  join.textContent = t('joining');
  client.publish(localStream); // media starts once admitted
  try {
    await client.connect({ room, token });
  } catch {
    // the `closed` listener shows the failure screen
  }
}

// ---- client events ----

client.addEventListener('welcome', (ev) => {
  const { status } = /** @type {CustomEvent<import('/sdk/kham.js').Welcome>} */ (ev).detail;
  if (inCall && status === 'admitted' && client.me) {
    // Joined anew after the server gave the old session up: a new own id, the others again.
    clearTiles();
    drawSelf(client.me);
    for (const p of client.participants.values()) addParticipant(p);
    return;
  }
  if (status === 'waiting') {
    inCall = false;
    attachStream(/** @type {HTMLVideoElement} */ (byId('waiting-video')), localStream);
    showScreen('waiting');
  } else {
    enterCall();
  }
});

client.addEventListener('admitted', () => enterCall());

client.addEventListener('lobby', (ev) => {
  const { entries } = /** @type {CustomEvent<{entries: import('/sdk/kham.js').LobbyEntry[]}>} */ (ev).detail;
  renderLobby(entries, {
    onAdmit: (id) => client.admit(id),
    onDeny: (id) => client.deny(id),
  });
  if (inCall) enableDoctorControls();
});

client.addEventListener('participantjoined', (ev) => {
  const { participant } = /** @type {CustomEvent<{participant: Participant}>} */ (ev).detail;
  if (inCall) addParticipant(participant);
});

client.addEventListener('participantupdated', (ev) => {
  const { participant } = /** @type {CustomEvent<{participant: Participant}>} */ (ev).detail;
  if (!inCall) return;
  if (client.me && participant.id === client.me.id) drawSelf(participant);
  else updateParticipant(participant);
});

client.addEventListener('participantleft', (ev) => {
  const { id } = /** @type {CustomEvent<{id: string}>} */ (ev).detail;
  removeParticipant(id);
});

/** @param {Event} ev */
function onTrackChange(ev) {
  const { participantId } = /** @type {CustomEvent<import('/sdk/kham.js').TrackDetail>} */ (ev).detail;
  if (!inCall) return;
  const p = client.participants.get(participantId);
  if (p) addParticipant(p);
  setRemoteStream(participantId, client.streamOf(participantId));
}
client.addEventListener('track', onTrackChange);
client.addEventListener('trackremoved', onTrackChange);

client.addEventListener('videostate', (ev) => {
  const { tracks } = /** @type {CustomEvent<{tracks: import('/sdk/kham.js').VideoState[]}>} */ (ev).detail;
  setVideoStates(tracks, (mid) => client.participantForMid(mid));
  if (inCall) relabelTiles();
});

client.addEventListener('quality', (ev) => {
  const { participants } = /** @type {CustomEvent<{participants: import('/sdk/kham.js').ParticipantQuality[]}>} */ (ev).detail;
  setQualities(participants);
  if (inCall) relabelTiles();
});

client.addEventListener('connectionstate', (ev) => {
  const { state } = /** @type {CustomEvent<{state: RTCPeerConnectionState}>} */ (ev).detail;
  const banner = byId('conn-banner');
  /** @type {Record<string, string>} */
  const keys = { new: 'conn.connecting', connecting: 'conn.connecting', disconnected: 'conn.disconnected', failed: 'conn.failed' };
  const key = keys[state];
  banner.hidden = !key;
  banner.dataset.state = state;
  banner.textContent = key ? t(key) : '';
});

// The signaling socket dropped and the SDK restores the session: tiles stay, a banner says so.
client.addEventListener('reconnecting', () => {
  byId('reconnecting').hidden = false;
});
client.addEventListener('reconnected', () => {
  byId('reconnecting').hidden = true;
});

client.addEventListener('error', (ev) => {
  const { code, message } = /** @type {CustomEvent<{code: string, message: string}>} */ (ev).detail;
  showToast(code === 'forbidden' ? t('error.forbidden') : t('error.generic', { message: message || code }));
});

client.addEventListener('closed', (ev) => {
  const { reason, message } = /** @type {CustomEvent<import('/sdk/kham.js').ClosedDetail>} */ (ev).detail;
  inCall = false;
  byId('reconnecting').hidden = true;
  clearTiles();
  stopStream(localStream);
  localStream = null;
  releaseWakeLock();
  showEnded(reason, message);
});

// ---- the call ----

function enterCall() {
  if (inCall || !client.me) return;
  inCall = true;
  showScreen('call');
  drawSelf(client.me);
  for (const p of client.participants.values()) addParticipant(p);
  buildControls();
  if (client.canAdmit || client.me.role === 'doctor') enableDoctorControls();
  requestWakeLock();
}

function buildControls() {
  const bar = byId('controls');
  const leave = makeAction({
    testid: 'leave', icon: ICONS.leave, label: 'leave', variant: 'ctl-leave',
    onClick: () => client.leave(),
  });
  relabelers.push(leave.relabel);
  const sends = client.me && client.me.role !== 'observer';
  bar.replaceChildren(...(sends ? [micToggle.el, camToggle.el] : []), audioOnlyToggle.el, leave.el);
}

let doctorControls = false;
function enableDoctorControls() {
  if (doctorControls) return;
  doctorControls = true;
  const end = makeAction({
    testid: 'end-consult', icon: ICONS.end, label: 'end_consult', variant: 'ctl-danger',
    onClick: async () => {
      if (await confirmAction(t('end_consult.confirm'))) client.endConsult();
    },
  });
  relabelers.push(end.relabel);
  byId('controls').append(end.el);
  setRemoveHandler(async (p) => {
    if (await confirmAction(t('remove.confirm', { name: p.name }))) client.remove(p.id);
  });
}

async function requestWakeLock() {
  try {
    if ('wakeLock' in navigator) wakeLock = await navigator.wakeLock.request('screen');
  } catch {
    // not granted (battery saver, unsupported): the call works anyway
  }
}

function releaseWakeLock() {
  if (wakeLock) wakeLock.release().catch(() => {});
  wakeLock = null;
}

// ---- the rest of the page ----

byId('waiting-leave').addEventListener('click', () => client.leave());
byId('rejoin').addEventListener('click', () => location.reload());
window.addEventListener('pagehide', () => {
  if (!client.closed && client.ws) client.leave();
});

// ---- the specialist queue: /queue (a station) and /duty (a doctor on duty) ----

/** The page's queue mode, from its path. */
const queueMode = location.pathname === '/queue' ? 'queue' : location.pathname === '/duty' ? 'duty' : null;

/** @param {'queue'|'duty'} mode */
function startQueue(mode) {
  showScreen(mode);
  const link = takeQueueToken();
  if (!link) {
    showEnded('bad_link');
    return;
  }
  const name = link.claims && link.claims.name ? link.claims.name : '';
  const drawIdentity = () => {
    byId(mode === 'queue' ? 'queue-identity' : 'duty-identity').textContent = name ? t(mode === 'queue' ? 'queue.as' : 'duty.as', { name }) : '';
  };
  drawIdentity();
  relabelers.push(drawIdentity, mode === 'queue' ? renderStation : renderDuty);
  const sock = new QueueSocket(link.token);
  /** @type {number|null} */
  let pairedRequest = null;
  /** @type {string|null} */
  let pairedRoom = null;
  const onPaired = async (/** @type {{room: string, token: string, request_id: number}} */ msg) => {
    // A station sent to another room (its doctor vanished, another took the request): the page
    // starts again from the queue, which pairs it anew.
    if (mode === 'queue' && pairedRoom !== null && msg.room !== pairedRoom) {
      location.replace('/queue');
      return;
    }
    if (inCall || pairedRequest !== null) return;
    pairedRequest = msg.request_id;
    pairedRoom = msg.room;
    const { stream } = await openLocalMedia();
    localStream = stream;
    joinCall(msg.room, msg.token);
  };
  if (mode === 'queue') {
    startStation(sock, { onPaired });
    // The doctor vanished before reaching the call: the request is back in the queue (at its
    // head), and so is this page, keeping its place (within the station grace).
    sock.addEventListener('queued', (ev) => {
      if (pairedRequest !== null && /** @type {CustomEvent} */ (ev).detail.stage === 'waiting') location.replace('/queue');
    });
  } else {
    startDuty(sock, { onPaired, onError: (message) => showToast(t('error.generic', { message })) });
    // In the room: the request leaves the queue as taken.
    client.addEventListener('welcome', () => {
      if (pairedRequest !== null) sock.send({ type: 'in_call', request_id: pairedRequest });
    });
    // After the call the duty page comes back (on duty again, unless the doctor chose busy).
    client.addEventListener('closed', () => {
      sock.stop();
      setTimeout(() => location.replace('/duty'), 1500);
    });
  }
  sock.addEventListener('refused', () => {
    if (!inCall) showEnded('connect_failed', '');
  });
  sock.open();
}

relabelAll();
if (queueMode) startQueue(queueMode);
else startPreview();
