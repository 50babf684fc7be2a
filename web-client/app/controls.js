// Buttons: on/off toggles for microphone and camera, and plain action buttons.
import { h, svg } from './dom.js';
import { ICONS } from './icons.js';
import { t } from './i18n.js';

/**
 * @typedef {object} Toggle
 * @property {HTMLButtonElement} el
 * @property {(off: boolean) => void} set   shows the state without firing onChange
 * @property {() => boolean} isOff
 * @property {() => void} relabel           after a language switch
 */

/**
 * A button that switches something off and on (aria-pressed = switched off; for a mode such
 * as "audio only", pressed = the mode is on).
 * @param {object} o
 * @param {string} o.testid
 * @param {string} o.iconOn      icon while on
 * @param {string} o.iconOff     icon while off
 * @param {string} o.labelOn     i18n key of the action while on ("Mute")
 * @param {string} o.labelOff    i18n key of the action while off ("Unmute")
 * @param {string} [o.hint]      i18n key of a longer explanation (tooltip)
 * @param {string} [o.pressedClass]  class while pressed; default "ctl-off" (switched off look)
 * @param {(off: boolean) => void} o.onChange
 * @returns {Toggle}
 */
export function makeToggle({ testid, iconOn, iconOff, labelOn, labelOff, hint, pressedClass = 'ctl-off', onChange }) {
  const el = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'ctl', 'data-testid': testid }));
  let off = false;
  const draw = () => {
    const label = t(off ? labelOff : labelOn);
    el.replaceChildren(svg(off ? iconOff : iconOn), h('span', { class: 'ctl-label' }, [label]));
    el.setAttribute('aria-pressed', String(off));
    el.setAttribute('aria-label', label);
    if (hint) el.title = t(hint);
    el.classList.toggle(pressedClass, off);
  };
  el.addEventListener('click', () => {
    off = !off;
    draw();
    onChange(off);
  });
  draw();
  return {
    el,
    set(v) {
      off = v;
      draw();
    },
    isOff: () => off,
    relabel: draw,
  };
}

/**
 * A plain action button with an icon and a translated label.
 * @param {object} o
 * @param {string} o.testid
 * @param {string} o.icon
 * @param {string} o.label   i18n key
 * @param {string} [o.variant]  extra class, e.g. "ctl-danger"
 * @param {() => void} o.onClick
 */
export function makeAction({ testid, icon, label, variant, onClick }) {
  const el = /** @type {HTMLButtonElement} */ (
    h('button', { type: 'button', class: `ctl ${variant || ''}`.trim(), 'data-testid': testid })
  );
  const draw = () => {
    el.replaceChildren(svg(icon), h('span', { class: 'ctl-label' }, [t(label)]));
    el.setAttribute('aria-label', t(label));
  };
  el.addEventListener('click', onClick);
  draw();
  return { el, relabel: draw };
}

export { ICONS };
