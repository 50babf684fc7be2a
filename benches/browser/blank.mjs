// An empty page on http://127.0.0.1 (a secure context, so getUserMedia works), for the
// configurations that drive RTCPeerConnection themselves.
import http from 'node:http';

/** @returns {Promise<{url: string, close(): Promise<void>}>} */
export function serveBlank() {
  return new Promise((resolve, reject) => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>kham browser-quality</title><body></body>');
    });
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolve({
        url: `http://127.0.0.1:${addr.port}/`,
        close: () => new Promise((r) => server.close(() => r(undefined))),
      });
    });
  });
}
