// Still images in the call: send one (a wound photo, an X-ray film, a prescription) at full
// resolution, see the progress on both sides, look at it with zoom and pan. The transfer is
// /sdk/images.js over the SDK's image data channel; nothing is kept once the session ends.
import { byId, h } from './dom.js';
import { t } from './i18n.js';
import { showToast } from './toast.js';
import { sendImage, ImageReceiver, ImageError, sha256Hex, MAX_IMAGE_BYTES, KIND_IMAGE_ACK, decodeImageFrame } from '/sdk/images.js';

/** @typedef {import('/sdk/kham.js').KhamClient} KhamClient */

/** @type {ImageReceiver|null} */
let receiver = null;
/** @type {Set<(from: string, ack: any) => void>} */
const ackListeners = new Set();
/** Items on the panel by key (`in:from:id` / `out:id`). @type {Map<string, HTMLElement>} */
const items = new Map();
/** @type {(id: string) => string} */
let nameOf = (id) => id;

/**
 * Wires the file input and the client's image frames.
 * @param {KhamClient} client
 * @param {(id: string) => string} names
 */
export function initImages(client, names) {
  nameOf = names;
  const input = /** @type {HTMLInputElement} */ (byId('image-input'));
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    if (file.size > MAX_IMAGE_BYTES) {
      showToast(t('image.too_large'));
      return;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    const key = `out:${Date.now()}`;
    const item = addItem(key, t('image.sending'), bytes.length, 'out');
    const me = client.me ? client.me.id : '';
    try {
      await sendImage(
        {
          me,
          send: (f) => client.sendImageFrame(f),
          buffered: () => client.imageBuffered(),
          others: () => (receiver ? receiver.inFlight : 0),
        },
        bytes,
        file.type || 'application/octet-stream',
        (_sent, acked, total) => setProgress(item, acked, total),
        (fn) => {
          ackListeners.add(fn);
          return () => ackListeners.delete(fn);
        },
      );
      setStatus(item, t('image.sent'));
      await showPicture(item, bytes, file.type);
    } catch (err) {
      const code = err instanceof ImageError ? err.code : 'failed';
      setStatus(item, t(`image.error.${code}`), true);
    }
  });
  client.addEventListener('imageframe', (ev) => {
    const { participantId, frame } = /** @type {CustomEvent<{participantId: string, frame: Uint8Array}>} */ (ev).detail;
    if (!client.participants.has(participantId)) return;
    if (frame[1] === KIND_IMAGE_ACK) {
      const ack = decodeImageFrame(frame);
      if (ack) for (const fn of ackListeners) fn(participantId, ack);
      return;
    }
    if (!receiver) {
      const me = client.me ? client.me.id : '';
      receiver = new ImageReceiver({ me, send: (f) => client.sendImageFrame(f), buffered: () => client.imageBuffered() }, {
        progress: (from, id, received, size) => {
          const key = `in:${from}:${id}`;
          const item = items.get(key) || addItem(key, t('image.from', { name: nameOf(from) }), size, 'in');
          setProgress(item, received, size);
        },
        done: async (from, id, bytes, type) => {
          const item = items.get(`in:${from}:${id}`);
          if (!item) return;
          setStatus(item, t('image.from', { name: nameOf(from) }));
          await showPicture(item, bytes, type);
        },
        failed: (from, id, code) => {
          const key = `in:${from}:${id}`;
          const item = items.get(key) || addItem(key, t('image.from', { name: nameOf(from) }), 0, 'in');
          setStatus(item, t(`image.error.${code}`), true);
        },
      });
    }
    receiver.handle(participantId, frame);
  });
}

/** A participant left: its unfinished image is given up. @param {string} id */
export function forgetImagesFrom(id) {
  if (receiver) receiver.forget(id);
}

/** The session is over: every picture is dropped. */
export function clearImages() {
  if (receiver) receiver.close();
  receiver = null;
  items.clear();
  byId('image-list').replaceChildren();
  byId('images-panel').hidden = true;
}

/** @param {string} key @param {string} title @param {number} size @param {'in'|'out'} dir */
function addItem(key, title, size, dir) {
  const item = h('li', { class: 'image-item', 'data-testid': 'image-item', 'data-direction': dir }, [
    h('span', { class: 'image-title', 'data-testid': 'image-status' }, [title]),
    h('progress', { 'data-testid': 'image-progress', max: String(size || 1), value: '0' }),
  ]);
  items.set(key, item);
  byId('image-list').append(item);
  byId('images-panel').hidden = false;
  return item;
}

/** @param {HTMLElement} item @param {number} done @param {number} total */
function setProgress(item, done, total) {
  const bar = /** @type {HTMLProgressElement} */ (item.querySelector('progress'));
  bar.max = total || 1;
  bar.value = done;
  bar.dataset.percent = String(total ? Math.floor((100 * done) / total) : 0);
}

/** @param {HTMLElement} item @param {string} text @param {boolean} [error] */
function setStatus(item, text, error = false) {
  const s = /** @type {HTMLElement} */ (item.querySelector('[data-testid="image-status"]'));
  s.textContent = text;
  item.classList.toggle('image-error', error);
  if (error) item.dataset.error = 'true';
}

/** Draws the picture as a thumbnail that opens the zoom and pan viewer. @param {HTMLElement} item @param {Uint8Array<ArrayBuffer>} bytes @param {string} type */
async function showPicture(item, bytes, type) {
  const hash = await sha256Hex(bytes);
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(new Blob([bytes], { type }));
  } catch {
    // not a picture the browser can decode: the bytes arrived all the same
  }
  const thumb = /** @type {HTMLCanvasElement} */ (h('canvas', {
    class: 'image-thumb', 'data-testid': 'shared-image', 'data-sha256': hash, 'data-bytes': String(bytes.length),
    width: '160', height: '120', role: 'button', tabindex: '0', 'aria-label': t('image.open'),
  }));
  if (bitmap) {
    const s = Math.min(160 / bitmap.width, 120 / bitmap.height);
    thumb.dataset.width = String(bitmap.width);
    thumb.dataset.height = String(bitmap.height);
    thumb.getContext('2d')?.drawImage(bitmap, (160 - bitmap.width * s) / 2, (120 - bitmap.height * s) / 2, bitmap.width * s, bitmap.height * s);
    const open = () => openViewer(/** @type {ImageBitmap} */ (bitmap));
    thumb.addEventListener('click', open);
    thumb.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
  }
  item.append(thumb);
}

/** The full-resolution viewer: wheel or buttons zoom, dragging pans. @param {ImageBitmap} bitmap */
function openViewer(bitmap) {
  const dialog = /** @type {HTMLDialogElement} */ (byId('image-viewer'));
  const canvas = /** @type {HTMLCanvasElement} */ (byId('image-canvas'));
  canvas.width = Math.min(window.innerWidth - 40, 1600);
  canvas.height = Math.min(window.innerHeight - 120, 1000);
  const fit = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
  const view = { zoom: fit, x: (canvas.width - bitmap.width * fit) / 2, y: (canvas.height - bitmap.height * fit) / 2 };
  const draw = () => {
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(view.zoom, 0, 0, view.zoom, view.x, view.y);
    ctx.drawImage(bitmap, 0, 0);
    canvas.dataset.zoom = view.zoom.toFixed(3);
  };
  /** @param {number} factor @param {number} cx @param {number} cy */
  const zoomAt = (factor, cx, cy) => {
    const z = Math.max(fit / 4, Math.min(16, view.zoom * factor));
    view.x = cx - ((cx - view.x) * z) / view.zoom;
    view.y = cy - ((cy - view.y) * z) / view.zoom;
    view.zoom = z;
    draw();
  };
  canvas.onwheel = (e) => {
    e.preventDefault();
    zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.offsetX, e.offsetY);
  };
  /** @type {{x: number, y: number}|null} */
  let drag = null;
  canvas.onpointerdown = (e) => { drag = { x: e.clientX, y: e.clientY }; canvas.setPointerCapture(e.pointerId); };
  canvas.onpointermove = (e) => {
    if (!drag) return;
    view.x += e.clientX - drag.x;
    view.y += e.clientY - drag.y;
    drag = { x: e.clientX, y: e.clientY };
    draw();
  };
  canvas.onpointerup = () => { drag = null; };
  byId('image-zoom-in').onclick = () => zoomAt(1.5, canvas.width / 2, canvas.height / 2);
  byId('image-zoom-out').onclick = () => zoomAt(1 / 1.5, canvas.width / 2, canvas.height / 2);
  byId('image-zoom-reset').onclick = () => {
    Object.assign(view, { zoom: fit, x: (canvas.width - bitmap.width * fit) / 2, y: (canvas.height - bitmap.height * fit) / 2 });
    draw();
  };
  draw();
  dialog.showModal();
}
