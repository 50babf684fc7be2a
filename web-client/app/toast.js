// A short message at the bottom of the screen (server errors, failed actions).
import { byId } from './dom.js';

/** @type {ReturnType<typeof setTimeout>|null} */
let timer = null;

/** @param {string} text @param {number} [ms] */
export function showToast(text, ms = 5000) {
  const el = byId('toast');
  el.textContent = text;
  el.hidden = false;
  if (timer !== null) clearTimeout(timer);
  timer = setTimeout(() => {
    el.hidden = true;
  }, ms);
}
