// The kham web client page (/join?room=R&token=T): device check, lobby, call, end screens.
// All signaling and media logic is in the SDK (/sdk/kham.js); this file wires it to the DOM.
import { KhamClient, ChatError } from '/sdk/kham.js';
import { byId, h } from './dom.js';
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
import {
  initChat, setChatSelf, setLobbyNames, addChatMessage, toggleChat, unreadCount, clearChat,
  relabelChat, onChatChange,
} from './chat.js';
import { publishVitals } from './vitals-publish.js';
import { initImages, forgetImagesFrom, clearImages } from './images-view.js';
import { simulatedDevice } from './vitals-sim.js';
import { bluetoothAvailable, bluetoothDevice } from './vitals-ble.js';
import { onVitalsFrame, setVitalsNames, removeVitals, clearVitals, relabelVitals } from './vitals-view.js';
import { makeShareToggle, setRemoteShare, setShareStates, clearShares } from './share.js';

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

// ---- chat ----

/** Sends a chat text (to a lobby entry when `to` is given); a refusal is shown as a toast. @param {string} text @param {string} [to] */
function sendChat(text, to) {
  try {
    client.sendChat(text, to);
  } catch (err) {
    if (err instanceof ChatError && err.code === 'too_large') showToast(t('chat.too_large'));
  }
}
initChat((text) => sendChat(text));

const chatButton = makeAction({
  testid: 'chat-toggle', icon: ICONS.chat, label: 'chat.open',
  onClick: () => toggleChat(),
});
function drawChatButton() {
  chatButton.relabel();
  const n = unreadCount();
  chatButton.el.setAttribute('aria-pressed', String(!byId('chat-panel').hidden));
  if (n > 0) {
    chatButton.el.append(h('span', { class: 'chat-badge', 'data-testid': 'chat-unread', title: t('chat.unread', { count: n }) }, [String(n)]));
    chatButton.el.setAttribute('aria-label', `${t('chat.open')}, ${t('chat.unread', { count: n })}`);
  }
}
onChatChange(drawChatButton);
relabelers.push(relabelChat);

client.addEventListener('chat', (ev) => {
  addChatMessage(/** @type {CustomEvent<import('/sdk/kham.js').ChatMessage>} */ (ev).detail);
});

// ---- vital signs ----

/** Stops the vitals being sent, when some are. @type {(() => void)|null} */
let stopVitals = null;
/** The join link asked for a source (`vitals=sim`: the simulated device; tests, demonstrations). */
const vitalsParam = new URLSearchParams(location.search).get('vitals');

/** @param {'sim'|'ble'} kind */
function startVitals(kind) {
  if (stopVitals) stopVitals();
  const source = kind === 'ble' ? bluetoothDevice() : simulatedDevice();
  stopVitals = publishVitals(client, source, () => {
    showToast(t('vitals.ble_failed'));
    setVitalsSending(null);
  });
  setVitalsSending(kind);
}

/** @param {'sim'|'ble'|null} kind */
function setVitalsSending(kind) {
  if (!kind && stopVitals) {
    stopVitals();
    stopVitals = null;
  }
  simButton.set(kind === 'sim');
  bleButton.set(kind === 'ble');
}

const simButton = makeToggle({
  testid: 'vitals-source-sim', iconOn: ICONS.pulse, iconOff: ICONS.pulse,
  labelOn: 'vitals.source_sim', labelOff: 'vitals.source_sim', hint: 'vitals.source_sim.hint', pressedClass: 'ctl-active',
  onChange: (on) => (on ? startVitals('sim') : setVitalsSending(null)),
});
const bleButton = makeToggle({
  testid: 'vitals-source-ble', iconOn: ICONS.pulse, iconOff: ICONS.pulse,
  labelOn: 'vitals.source_ble', labelOff: 'vitals.source_ble', hint: 'vitals.source_ble.hint', pressedClass: 'ctl-active',
  onChange: (on) => (on ? startVitals('ble') : setVitalsSending(null)),
});
relabelers.push(simButton.relabel, bleButton.relabel, relabelVitals);

setVitalsNames((id) => client.participants.get(id)?.name || id);
initImages(client, (id) => client.participants.get(id)?.name || id);
const imageButton = makeAction({
  testid: 'image-send-button', icon: ICONS.image, label: 'image.send',
  onClick: () => byId('image-input').click(),
});
relabelers.push(imageButton.relabel);
client.addEventListener('vitals', (ev) => {
  const { participantId, frame, receivedAt } = /** @type {CustomEvent<{participantId: string, frame: any, receivedAt: number}>} */ (ev).detail;
  // Only from someone in the call (a frame still in flight from one who left is dropped).
  if (inCall && client.participants.has(participantId)) onVitalsFrame(participantId, frame, receivedAt);
});

/** Whether this participant's token lets it chat (an observer only with the health_data grant). */
let chats = true;

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
  const grants = link.claims && /** @type {any} */ (link.claims).grants;
  chats = !observer || !!(grants && grants.health_data === true);
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
  if (client.me) setChatSelf(client.me.id);
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
  setLobbyNames(entries);
  renderLobby(entries, {
    onAdmit: (id) => client.admit(id),
    onDeny: (id) => client.deny(id),
    onMessage: (id, text) => sendChat(text, id),
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
  removeVitals(id);
  forgetImagesFrom(id);
  setRemoteShare(id, '', null);
});

/** @param {Event} ev */
function onTrackChange(ev) {
  const { participantId, screen, mid } = /** @type {CustomEvent<import('/sdk/kham.js').TrackDetail>} */ (ev).detail;
  if (!inCall) return;
  const p = client.participants.get(participantId);
  if (screen) {
    setRemoteShare(participantId, p ? p.name : '', client.shareOf(participantId), mid);
    return;
  }
  if (p) addParticipant(p);
  setRemoteStream(participantId, client.streamOf(participantId));
}
client.addEventListener('track', onTrackChange);
client.addEventListener('trackremoved', onTrackChange);

client.addEventListener('videostate', (ev) => {
  const { tracks } = /** @type {CustomEvent<{tracks: import('/sdk/kham.js').VideoState[]}>} */ (ev).detail;
  setVideoStates(tracks, (mid) => client.participantForMid(mid));
  setShareStates(tracks);
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
  /** @type {Record<string, string>} */
  const known = { forbidden: 'error.forbidden', too_large: 'chat.too_large' };
  const chatLimit = code === 'rate_limited' && String(message).startsWith('chat:');
  const key = chatLimit ? 'chat.rate_limited' : known[code];
  showToast(key ? t(key) : t('error.generic', { message: message || code }));
});

client.addEventListener('closed', (ev) => {
  const { reason, message } = /** @type {CustomEvent<import('/sdk/kham.js').ClosedDetail>} */ (ev).detail;
  inCall = false;
  byId('reconnecting').hidden = true;
  clearTiles();
  clearChat();
  toggleChat(false);
  clearVitals();
  clearImages();
  if (stopVitals) stopVitals();
  stopVitals = null;
  clearShares();
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
  if (vitalsParam === 'sim' && chats && client.me.role !== 'observer') startVitals('sim');
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
  /** @type {HTMLElement[]} */
  const share = [];
  if (sends && navigator.mediaDevices && 'getDisplayMedia' in navigator.mediaDevices) {
    const toggle = makeShareToggle(client);
    relabelers.push(toggle.relabel);
    share.push(toggle.el);
  }
  // A station or a patient at home sends vital signs (a doctor may demonstrate them too).
  const vitals = sends && chats ? [simButton.el, ...(bluetoothAvailable() ? [bleButton.el] : [])] : [];
  bar.replaceChildren(
    ...(sends ? [micToggle.el, camToggle.el, ...share] : []), audioOnlyToggle.el, ...vitals, ...(chats ? [imageButton.el, chatButton.el] : []), leave.el,
  );
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
