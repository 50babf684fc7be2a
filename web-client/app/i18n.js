// Every user-visible string of the kham web client, in Vietnamese (default) and English.
// Elements carrying data-i18n="key" get their text set by applyI18n(); data-i18n-attr="attr:key"
// sets attributes (e.g. aria-label).

const STORAGE_KEY = 'kham.lang';

/** @typedef {'vi'|'en'} Lang */

/** @type {Record<Lang, Record<string, string>>} */
const STRINGS = {
  vi: {
    'app.title': 'Khám trực tuyến',
    'lang.switch': 'English',
    'lang.switch.label': 'Switch to English',
    'preview.title': 'Kiểm tra camera và micrô',
    'preview.joining_as': 'Bạn tham gia với tên {name} ({role})',
    'preview.hint': 'Hãy kiểm tra hình ảnh và âm thanh trước khi vào phòng khám.',
    'preview.no_camera': 'Không mở được camera hoặc micrô. Bạn vẫn có thể vào phòng, nhưng người khác sẽ không thấy hoặc nghe bạn.',
    'preview.starting': 'Đang mở camera…',
    'join': 'Vào phòng khám',
    'joining': 'Đang kết nối…',
    'lobby.waiting.title': 'Vui lòng chờ bác sĩ cho vào',
    'lobby.waiting.text': 'Bác sĩ đã được báo bạn đang chờ. Xin giữ trang này mở.',
    'lobby.title': 'Đang chờ vào phòng',
    'lobby.empty': 'Không có ai đang chờ.',
    'lobby.waited': 'chờ {minutes} phút',
    'lobby.waited_now': 'vừa đến',
    'admit': 'Cho vào',
    'deny': 'Từ chối',
    'admit.label': 'Cho {name} vào phòng',
    'deny.label': 'Từ chối {name}',
    'call.alone': 'Chưa có ai khác trong phòng.',
    'you': 'Bạn',
    'mute': 'Tắt micrô',
    'unmute': 'Bật micrô',
    'camera.off': 'Tắt camera',
    'camera.on': 'Bật camera',
    'leave': 'Rời phòng',
    'controls.label': 'Điều khiển cuộc gọi',
    'end_consult': 'Kết thúc buổi khám',
    'end_consult.confirm': 'Kết thúc buổi khám cho tất cả mọi người?',
    'remove': 'Mời ra',
    'remove.label': 'Mời {name} ra khỏi phòng',
    'remove.confirm': 'Mời {name} ra khỏi phòng? Đường dẫn của người này sẽ không dùng được nữa.',
    'confirm.yes': 'Đồng ý',
    'confirm.no': 'Hủy',
    'muted.audio': 'Đã tắt micrô',
    'muted.video': 'Đã tắt camera',
    'audio_only': 'Chỉ âm thanh',
    'audio_only.hint': 'Tắt hình của người khác để tiết kiệm dữ liệu di động; vẫn nghe rõ tiếng',
    'share.start': 'Chia sẻ màn hình',
    'share.stop': 'Dừng chia sẻ',
    'share.hint': 'Chia sẻ màn hình (ảnh X-quang, phim PACS): giữ độ nét, giảm số khung hình khi mạng yếu',
    'share.failed': 'Không chia sẻ được màn hình: {message}',
    'share.label': 'Màn hình của {name}',
    'paused.bandwidth': 'Kết nối yếu, video tạm dừng',
    'paused.audio_only': 'Chỉ âm thanh để tiết kiệm dữ liệu',
    'paused.no_video': 'Chưa có hình',
    'paused.hidden': 'Đang tải hình…',
    'paused.other': 'Video tạm dừng',
    'conn_quality.label': 'Chất lượng kết nối: {level}',
    'conn_quality.excellent': 'rất tốt',
    'conn_quality.good': 'tốt',
    'conn_quality.poor': 'kém',
    'conn_quality.lost': 'mất kết nối',
    'conn.connecting': 'Đang kết nối âm thanh và hình ảnh…',
    'conn.disconnected': 'Mạng chập chờn, đang thử kết nối lại…',
    'conn.failed': 'Mất kết nối âm thanh và hình ảnh.',
    'conn.reconnecting': 'Đang kết nối lại…',
    'tile.reconnecting': 'Đang kết nối lại',
    'role.doctor': 'Bác sĩ',
    'role.station': 'Trạm y tế',
    'role.patient': 'Bệnh nhân',
    'role.observer': 'Người quan sát',
    'ended.left.title': 'Bạn đã rời phòng',
    'ended.denied.title': 'Bác sĩ chưa thể tiếp bạn lúc này',
    'ended.removed.title': 'Bạn đã được mời ra khỏi phòng',
    'ended.ended.title': 'Buổi khám đã kết thúc',
    'ended.replaced.title': 'Bạn đã vào phòng từ một thiết bị khác',
    'connect_error.expired_token': 'Đường dẫn đã hết hạn. Xin liên hệ cơ sở y tế để nhận đường dẫn mới.',
    'connect_error.invalid_token': 'Đường dẫn không hợp lệ. Xin kiểm tra lại đường dẫn đã nhận.',
    'connect_error.missing_token': 'Đường dẫn thiếu mã truy cập. Xin kiểm tra lại đường dẫn đã nhận.',
    'connect_error.wrong_room': 'Đường dẫn này dành cho một phòng khám khác.',
    'connect_error.revoked_token': 'Đường dẫn này không còn dùng được (đã bị từ chối hoặc mời ra).',
    'connect_error.room_full': 'Phòng khám đã đủ người.',
    'connect_error.room_ended': 'Buổi khám đã kết thúc.',
    'ended.connect_failed.title': 'Không kết nối được',
    'ended.connect_failed.text': 'Đường dẫn không hợp lệ hoặc đã hết hạn, hoặc phòng đã đóng. Xin liên hệ cơ sở y tế để nhận đường dẫn mới.',
    'ended.connection_lost.title': 'Mất kết nối',
    'ended.connection_lost.text': 'Kết nối với máy chủ bị ngắt. Hãy kiểm tra mạng rồi thử vào lại.',
    'ended.bad_link.title': 'Đường dẫn không đầy đủ',
    'ended.bad_link.text': 'Đường dẫn thiếu mã phòng hoặc mã truy cập. Xin mở lại đúng đường dẫn đã nhận.',
    'ended.reason': 'Lý do: {reason}',
    'rejoin': 'Thử vào lại',
    'error.forbidden': 'Bạn không có quyền làm việc này.',
    'chat.title': 'Tin nhắn',
    'chat.open': 'Tin nhắn',
    'chat.unread': '{count} tin nhắn chưa đọc',
    'chat.placeholder': 'Nhập tin nhắn…',
    'chat.send': 'Gửi',
    'chat.from_doctor': 'Tin nhắn từ bác sĩ',
    'chat.lobby_entry': 'người đang chờ',
    'chat.lobby_placeholder': 'Nhắn cho {name}…',
    'chat.lobby_send': 'Nhắn',
    'chat.too_large': 'Tin nhắn quá dài (tối đa 2000 byte); chưa gửi.',
    'chat.rate_limited': 'Bạn gửi tin nhắn quá nhanh; tin nhắn vừa rồi chưa được gửi.',
    'chat.forbidden': 'Bạn không được tham gia trò chuyện trong buổi khám này.',
    'vitals.title': 'Sinh hiệu: {name}',
    'vitals.hr': 'Nhịp tim',
    'vitals.spo2': 'SpO₂',
    'vitals.rr': 'Nhịp thở',
    'vitals.bp': 'Huyết áp',
    'vitals.temp': 'Nhiệt độ',
    'vitals.unit.per_min': 'lần/phút',
    'vitals.ecg': 'Điện tim (ECG)',
    'vitals.pleth': 'Sóng mạch (SpO₂)',
    'vitals.updated': 'cập nhật {s} giây trước',
    'vitals.stale': 'cũ',
    'vitals.missing': 'chưa có',
    'vitals.high': 'cao',
    'vitals.low': 'thấp',
    'vitals.wave_missing': 'Không nhận được sóng (đường truyền yếu); chỉ số vẫn cập nhật.',
    'vitals.source_sim': 'Máy mô phỏng',
    'vitals.source_sim.hint': 'Gửi sinh hiệu từ máy theo dõi mô phỏng (trình diễn)',
    'vitals.source_ble': 'Máy Bluetooth',
    'vitals.source_ble.hint': 'Gửi sinh hiệu từ máy đo Bluetooth (nhịp tim, SpO₂, huyết áp, nhiệt độ)',
    'vitals.ble_failed': 'Không kết nối được máy đo Bluetooth.',
    'image.title': 'Hình ảnh',
    'image.send': 'Gửi ảnh',
    'image.sending': 'Đang gửi ảnh…',
    'image.sent': 'Đã gửi ảnh',
    'image.from': 'Ảnh từ {name}',
    'image.open': 'Xem ảnh (phóng to, kéo để di chuyển)',
    'image.fit': 'Vừa khung',
    'image.close': 'Đóng',
    'image.too_large': 'Ảnh quá lớn (tối đa 8 MB); chưa gửi.',
    'image.error.too_large': 'Ảnh quá lớn (tối đa 8 MB).',
    'image.error.empty': 'Tệp rỗng.',
    'image.error.no_receivers': 'Không ai trong phòng nhận được ảnh.',
    'image.error.stalled': 'Gửi ảnh bị gián đoạn.',
    'image.error.cancelled': 'Đã hủy gửi ảnh.',
    'image.error.incomplete': 'Ảnh nhận không đầy đủ.',
    'image.error.bad_chunk': 'Ảnh nhận bị lỗi.',
    'image.error.failed': 'Không gửi được ảnh.',
    'error.generic': 'Có lỗi xảy ra: {message}',
  },
  en: {
    'app.title': 'Online consultation',
    'lang.switch': 'Tiếng Việt',
    'lang.switch.label': 'Chuyển sang tiếng Việt',
    'preview.title': 'Check your camera and microphone',
    'preview.joining_as': 'You are joining as {name} ({role})',
    'preview.hint': 'Check your picture and sound before entering the consultation.',
    'preview.no_camera': 'Could not open the camera or microphone. You can still join, but others will not see or hear you.',
    'preview.starting': 'Starting camera…',
    'join': 'Join consultation',
    'joining': 'Connecting…',
    'lobby.waiting.title': 'Please wait, the doctor will let you in',
    'lobby.waiting.text': 'The doctor knows you are waiting. Please keep this page open.',
    'lobby.title': 'Waiting to join',
    'lobby.empty': 'Nobody is waiting.',
    'lobby.waited': 'waiting {minutes} min',
    'lobby.waited_now': 'just arrived',
    'admit': 'Admit',
    'deny': 'Deny',
    'admit.label': 'Admit {name}',
    'deny.label': 'Deny {name}',
    'call.alone': 'Nobody else is here yet.',
    'you': 'You',
    'mute': 'Mute',
    'unmute': 'Unmute',
    'camera.off': 'Camera off',
    'camera.on': 'Camera on',
    'leave': 'Leave',
    'controls.label': 'Call controls',
    'end_consult': 'End consultation',
    'end_consult.confirm': 'End the consultation for everyone?',
    'remove': 'Remove',
    'remove.label': 'Remove {name} from the call',
    'remove.confirm': 'Remove {name} from the call? Their link will stop working.',
    'confirm.yes': 'Yes',
    'confirm.no': 'Cancel',
    'muted.audio': 'Microphone off',
    'muted.video': 'Camera off',
    'audio_only': 'Audio only',
    'audio_only.hint': "Turn off others' video to save mobile data; you still hear them",
    'share.start': 'Share screen',
    'share.stop': 'Stop sharing',
    'share.hint': 'Share your screen (an X-ray, a PACS viewer): kept sharp, fewer frames on a weak link',
    'share.failed': 'Could not share the screen: {message}',
    'share.label': "{name}'s screen",
    'paused.bandwidth': 'Weak connection, video paused',
    'paused.audio_only': 'Audio only to save data',
    'paused.no_video': 'No video yet',
    'paused.hidden': 'Loading video…',
    'paused.other': 'Video paused',
    'conn_quality.label': 'Connection quality: {level}',
    'conn_quality.excellent': 'excellent',
    'conn_quality.good': 'good',
    'conn_quality.poor': 'poor',
    'conn_quality.lost': 'lost',
    'conn.connecting': 'Connecting audio and video…',
    'conn.disconnected': 'Network unstable, reconnecting…',
    'conn.failed': 'Audio and video connection lost.',
    'conn.reconnecting': 'Reconnecting…',
    'tile.reconnecting': 'Reconnecting',
    'role.doctor': 'Doctor',
    'role.station': 'Health station',
    'role.patient': 'Patient',
    'role.observer': 'Observer',
    'ended.left.title': 'You left the call',
    'ended.denied.title': 'The doctor cannot see you right now',
    'ended.removed.title': 'You were removed from the call',
    'ended.ended.title': 'The consultation has ended',
    'ended.replaced.title': 'You joined from another device',
    'connect_error.expired_token': 'This link has expired. Please ask the clinic for a new link.',
    'connect_error.invalid_token': 'This link is not valid. Please check the link you received.',
    'connect_error.missing_token': 'This link has no access code. Please check the link you received.',
    'connect_error.wrong_room': 'This link is for another consultation room.',
    'connect_error.revoked_token': 'This link can no longer be used (denied or removed).',
    'connect_error.room_full': 'The consultation room is full.',
    'connect_error.room_ended': 'The consultation has ended.',
    'ended.connect_failed.title': 'Could not connect',
    'ended.connect_failed.text': 'The link is invalid or expired, or the room is closed. Please ask the clinic for a new link.',
    'ended.connection_lost.title': 'Connection lost',
    'ended.connection_lost.text': 'The connection to the server was interrupted. Check your network and try again.',
    'ended.bad_link.title': 'Incomplete link',
    'ended.bad_link.text': 'The link is missing the room or access code. Please open the link you received again.',
    'ended.reason': 'Reason: {reason}',
    'rejoin': 'Try again',
    'error.forbidden': 'You are not allowed to do that.',
    'chat.title': 'Messages',
    'chat.open': 'Chat',
    'chat.unread': '{count} unread messages',
    'chat.placeholder': 'Type a message…',
    'chat.send': 'Send',
    'chat.from_doctor': 'Messages from the doctor',
    'chat.lobby_entry': 'waiting person',
    'chat.lobby_placeholder': 'Message {name}…',
    'chat.lobby_send': 'Send',
    'chat.too_large': 'The message is too long (at most 2000 bytes); it was not sent.',
    'chat.rate_limited': 'You are sending messages too fast; the last one was not sent.',
    'chat.forbidden': 'You may not take part in the chat of this consultation.',
    'vitals.title': 'Vital signs: {name}',
    'vitals.hr': 'Heart rate',
    'vitals.spo2': 'SpO₂',
    'vitals.rr': 'Resp. rate',
    'vitals.bp': 'Blood pressure',
    'vitals.temp': 'Temperature',
    'vitals.unit.per_min': '/min',
    'vitals.ecg': 'ECG',
    'vitals.pleth': 'Pleth (SpO₂)',
    'vitals.updated': 'updated {s} s ago',
    'vitals.stale': 'stale',
    'vitals.missing': 'none yet',
    'vitals.high': 'high',
    'vitals.low': 'low',
    'vitals.wave_missing': 'No waveforms (weak link); numerics still update.',
    'vitals.source_sim': 'Simulator',
    'vitals.source_sim.hint': 'Send vital signs from the simulated monitor (demonstration)',
    'vitals.source_ble': 'Bluetooth',
    'vitals.source_ble.hint': 'Send vital signs from a Bluetooth device (heart rate, SpO₂, blood pressure, temperature)',
    'vitals.ble_failed': 'Could not connect to the Bluetooth device.',
    'image.title': 'Images',
    'image.send': 'Send image',
    'image.sending': 'Sending image…',
    'image.sent': 'Image sent',
    'image.from': 'Image from {name}',
    'image.open': 'View image (zoom, drag to move)',
    'image.fit': 'Fit',
    'image.close': 'Close',
    'image.too_large': 'The image is too large (at most 8 MB); it was not sent.',
    'image.error.too_large': 'The image is too large (at most 8 MB).',
    'image.error.empty': 'The file is empty.',
    'image.error.no_receivers': 'Nobody in the call can receive images.',
    'image.error.stalled': 'The image transfer was interrupted.',
    'image.error.cancelled': 'The image transfer was cancelled.',
    'image.error.incomplete': 'The image arrived incomplete.',
    'image.error.bad_chunk': 'The image arrived damaged.',
    'image.error.failed': 'The image could not be sent.',
    'error.generic': 'Something went wrong: {message}',
  },
};

/** @returns {Lang} */
function initialLang() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'vi' || saved === 'en') return saved;
  } catch {
    // storage unavailable (private mode): fall through to the default
  }
  return 'vi';
}

/** @type {Lang} */
let current = initialLang();

/**
 * Adds strings of another page (the operators' dashboard) to both languages, so that page
 * shares this module's language choice and helpers.
 * @param {Record<Lang, Record<string, string>>} more
 */
export function addStrings(more) {
  Object.assign(STRINGS.vi, more.vi);
  Object.assign(STRINGS.en, more.en);
}

/** @returns {Lang} */
export function getLang() {
  return current;
}

/** @param {Lang} lang */
export function setLang(lang) {
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // not remembered; the switch still applies to this page
  }
}

/**
 * The string for `key` in the current language, with {name} placeholders filled in.
 * @param {string} key
 * @param {Record<string, string|number>} [params]
 */
export function t(key, params) {
  const s = STRINGS[current][key] ?? STRINGS.vi[key] ?? key;
  if (!params) return s;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Label of a role in the current language. @param {string} role */
export function roleLabel(role) {
  return t(`role.${role}`);
}

/**
 * Sets the text of every [data-i18n] element and the attributes named by [data-i18n-attr]
 * ("aria-label:key;title:key") under `root`.
 * @param {ParentNode} root
 */
export function applyI18n(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    const key = el.getAttribute('data-i18n');
    if (key) el.textContent = t(key);
  }
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    const spec = el.getAttribute('data-i18n-attr') || '';
    for (const pair of spec.split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}
