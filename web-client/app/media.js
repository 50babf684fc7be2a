// Opening the camera and microphone, with fallbacks for phones without a camera or with
// permission refused for one of them.

/** Camera constraints: 720p when the device can, 360p is fine; 24 fps saves weak uplinks. */
export const VIDEO_CONSTRAINTS = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 24, max: 30 },
  facingMode: 'user',
};

export const AUDIO_CONSTRAINTS = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
};

/**
 * Camera and microphone if possible, else microphone only, else camera only, else null.
 * @returns {Promise<{stream: MediaStream|null, error: unknown}>}
 */
export async function openLocalMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: null, error: new Error('getUserMedia unavailable (needs https)') };
  }
  /** @type {MediaStreamConstraints[]} */
  const attempts = [
    { audio: AUDIO_CONSTRAINTS, video: VIDEO_CONSTRAINTS },
    { audio: AUDIO_CONSTRAINTS, video: false },
    { audio: false, video: VIDEO_CONSTRAINTS },
  ];
  let error = null;
  for (const c of attempts) {
    try {
      return { stream: await navigator.mediaDevices.getUserMedia(c), error };
    } catch (err) {
      error = error || err;
    }
  }
  return { stream: null, error };
}

/** @param {MediaStream|null} stream */
export function stopStream(stream) {
  if (!stream) return;
  for (const tr of stream.getTracks()) tr.stop();
}

/**
 * Shows a stream in a <video>, starting playback (autoplay may need a retry after a gesture).
 * @param {HTMLVideoElement} video
 * @param {MediaStream|null} stream
 */
export function attachStream(video, stream) {
  if (video.srcObject === stream) return;
  video.srcObject = stream;
  if (stream) {
    video.play().catch(() => {
      // Autoplay refused (audio without a gesture): retry on the next tap anywhere.
      document.addEventListener('pointerdown', () => video.play().catch(() => {}), { once: true });
    });
  }
}
