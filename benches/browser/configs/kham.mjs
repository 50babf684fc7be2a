// kham (adaptation on) and kham_no_adaptation (KHAM_MEDIA__ADAPTATION=false, top layer always):
// a `kham serve --dev` announcing the config's relay address, a kham-relay in front of its media
// port, the real web client as a doctor (publisher: 720p fake camera, three simulcast layers,
// Opus) and as an observer (subscriber, receives only).
import { startKham } from '../../../tests/browser/server.mjs';
import { specEntry, startRelay } from '../relay.mjs';

const visible = (/** @type {string} */ testid) => `[data-testid="${testid}"]:not([hidden])`;

/**
 * Opens a join link and joins the call; resolves with the instant of the join click when the
 * call screen shows.
 * @param {import('playwright-core').Page} page @param {string} link
 */
async function join(page, link) {
  await page.goto(link);
  await page.waitForSelector('[data-testid="join"]:not([disabled])', { timeout: 30_000 });
  const clicked = Date.now();
  await page.click('[data-testid="join"]');
  await page.waitForSelector(visible('call'), { timeout: 30_000 });
  return clicked;
}

/** @param {any} ctx */
export async function start(ctx) {
  const adaptation = ctx.name !== 'kham_no_adaptation';
  const kham = await startKham({
    extraEnv: {
      KHAM_MEDIA__ANNOUNCE: JSON.stringify([ctx.relayIp]),
      KHAM_MEDIA__ADAPTATION: String(adaptation),
    },
  });
  /** @type {Awaited<ReturnType<typeof startRelay>>|null} */
  let relay = null;
  try {
    // Clients in order of first datagram: the publisher joins first (client 0), then the
    // subscriber (client 1); anything later (another local address) gets the subscriber's link.
    relay = await startRelay({
      relayBin: ctx.relayBin, workDir: ctx.workDir, name: ctx.name, seed: ctx.seed, log: ctx.log,
      listen: `${ctx.relayIp}:${kham.udpPort}`, upstream: `127.0.0.1:${kham.udpPort}`,
      clients: [specEntry(ctx.linkArgs.publisher), specEntry(ctx.linkArgs.subscriber)],
      fallback: specEntry(ctx.linkArgs.subscriber),
    });
    const room = `bq-${ctx.name.replace(/_/g, '-')}-${Date.now().toString(36)}`;
    const doctor = await kham.joinLink({ room, identity: 'dr-bench', name: 'BS. Bench', role: 'doctor' });
    const observer = await kham.joinLink({ room, identity: 'sub-bench', name: 'Trạm y tế bench', role: 'observer' });
    const admin = await kham.adminToken();

    await join(ctx.publisher, doctor);
    // Wait until the publisher's media flows through the relay (so it is the relay's client 0)
    // before the subscriber appears. Audio: with nobody subscribed, dynacast may pause video.
    const until = Date.now() + 20_000;
    for (;;) {
      const sent = await ctx.publisher.evaluate(async () => {
        const pc = /** @type {any} */ (window).__kham.pc;
        let bytes = 0;
        if (pc) (await pc.getStats()).forEach((/** @type {any} */ s) => { if (s.type === 'outbound-rtp') bytes += s.bytesSent || 0; });
        return bytes;
      });
      if (sent > 0) break;
      if (Date.now() > until) throw new Error(`${ctx.name}: the publisher sent no media within 20 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // t0 (time to first frame, sample times): the subscriber's join click.
    const t0 = await join(ctx.subscriber, observer);

    return {
      t0,
      async serverSample() {
        const res = await fetch(`${kham.baseUrl}/api/admin/rooms/${encodeURIComponent(room)}`, { headers: { authorization: `Bearer ${admin}` } });
        if (!res.ok) return {};
        const view = await res.json();
        const sub = (view.participants || []).find((/** @type {any} */ p) => p.role === 'observer');
        if (!sub) return {};
        const layer = sub.layers && sub.layers[0] ? sub.layers[0].layer : null;
        return {
          estimate_kbps: sub.estimate_kbps ?? undefined,
          layer: sub.audio_only ? 'paused' : layer === null || layer === undefined ? undefined : String(layer),
        };
      },
      async stop() {
        await relay?.stop();
        await kham.stop();
      },
    };
  } catch (err) {
    await relay?.stop();
    await kham.stop();
    throw err;
  }
}
