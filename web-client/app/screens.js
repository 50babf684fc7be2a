// Switches between the four screens and fills in the end screen.
import { byId } from './dom.js';
import { t } from './i18n.js';

/** @typedef {'preview'|'waiting'|'call'|'ended'|'queue'|'duty'} ScreenName */

const SCREENS = /** @type {const} */ (['preview', 'waiting', 'call', 'ended', 'queue', 'duty']);

/** @param {ScreenName} name */
export function showScreen(name) {
  for (const s of SCREENS) byId(`screen-${s}`).hidden = s !== name;
  document.body.dataset.screen = name;
}

/**
 * Why the session is over: a CloseReason of the SDK, or `bad_link` for a link without room/token.
 * @typedef {import('../sdk/kham.js').CloseReason | 'bad_link'} EndReason
 */

/** What the end screen currently shows, so a language switch can redraw it. @type {{reason: EndReason, message: string}|null} */
let shown = null;

/**
 * Shows the end screen: a title per reason, an explanation for failures, the server's reason
 * text when there is one, and a retry button where retrying can help.
 * @param {EndReason} reason
 * @param {string} [message]
 */
export function showEnded(reason, message = '') {
  shown = { reason, message };
  renderEnded();
  showScreen('ended');
}

export function renderEnded() {
  if (!shown) return;
  const { reason, message } = shown;
  const screen = byId('screen-ended');
  screen.dataset.reason = reason;
  byId('ended-title').textContent = t(`ended.${reason}.title`);
  // A refused join says why (expired link, wrong room, full, ended) when the server told us.
  const specific = reason === 'connect_failed' && message ? t(`connect_error.${message}`) : '';
  const textKey = `ended.${reason}.text`;
  const text = specific && specific !== `connect_error.${message}` ? specific : t(textKey);
  byId('ended-text').textContent = text === textKey ? '' : text;
  const showReason = message && reason !== 'connect_failed' && reason !== 'connection_lost';
  byId('ended-reason').textContent = showReason ? t('ended.reason', { reason: message }) : '';
  byId('rejoin').hidden = !(reason === 'connect_failed' || reason === 'connection_lost' || reason === 'left');
}
