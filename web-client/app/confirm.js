// A yes/no question in a modal <dialog>, for actions that cannot be undone.
import { byId } from './dom.js';

/**
 * Asks a question; resolves true when the person confirms.
 * @param {string} text
 * @returns {Promise<boolean>}
 */
export function confirmAction(text) {
  const dialog = /** @type {HTMLDialogElement} */ (byId('confirm'));
  byId('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}
