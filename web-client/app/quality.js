// Connection quality per participant (the server's `quality` message): four bars next to each
// name, own tile included.
import { h } from './dom.js';
import { t } from './i18n.js';

/** @typedef {import('../sdk/kham.js').Quality} Quality */

/** How many of the four bars light up per level. */
const BARS = /** @type {const} */ ({ excellent: 4, good: 3, poor: 1, lost: 0 });

/** @type {Map<string, Quality>} */
const known = new Map();

/** @param {unknown} q @returns {q is Quality} */
function isQuality(q) {
  return typeof q === 'string' && Object.prototype.hasOwnProperty.call(BARS, q);
}

/**
 * Records the scores of a `quality` message; unknown levels are ignored.
 * @param {{id: string, quality: string}[]} list
 */
export function setQualities(list) {
  for (const { id, quality } of list) if (isQuality(quality)) known.set(id, quality);
}

/** @param {string} id @returns {Quality|null} */
export function qualityOf(id) {
  return known.get(id) || null;
}

/** @param {string} id */
export function forgetQuality(id) {
  known.delete(id);
}

/**
 * The four bars for a level, with a spoken label ("Chất lượng kết nối: tốt").
 * @param {Quality} level
 */
export function qualityBars(level) {
  const label = t('conn_quality.label', { level: t(`conn_quality.${level}`) });
  const lit = BARS[level];
  const bars = [1, 2, 3, 4].map((n) => h('i', { class: n <= lit ? 'on' : undefined }));
  return h('span', {
    class: 'quality', role: 'img', 'data-testid': 'quality', 'data-level': level,
    'aria-label': label, title: label,
  }, bars);
}
