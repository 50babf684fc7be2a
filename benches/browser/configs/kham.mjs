// kham (adaptation on) and kham_no_adaptation (KHAM_MEDIA__ADAPTATION=false, top layer always):
// a `kham serve --dev` announcing the config's relay address, a kham-relay per side in front of
// its media port (the publisher's on relayIp, the subscriber's on relayIp + 100), the real web
// client as a doctor (publisher: 720p fake camera, three simulcast layers, Opus) and as an
// observer (subscriber, receives only).
import { startKham } from '../../../tests/browser/server.mjs';
import { specEntry, startRelay, subscriberRelayIp } from '../relay.mjs';

const visible = (/** @type {string} */ testid) => `[data-testid="${testid}"]:not([hidden])`;

/**
 * Opens a join link and joins the call; resolves with the instant of the join click when the
 * call screen shows.
 * @param {import('playwright-core').Page} page @param {string} link
 */
async function join(page, link) {
  // Chromium aborts loads with net::ERR_NETWORK_CHANGED when an interface appears (Janus's veth
  // in its namespace, set up in the same second): a page whose module failed to load never
  // enables its join button. Load it again (t0 is the join click, so retries do not count).
  for (let attempt = 1; ; attempt += 1) {
    await page.goto(link);
    try {
      await page.waitForSelector('[data-testid="join"]:not([disabled])', { timeout: 10_000 });
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
  const clicked = Date.now();
  await page.click('[data-testid="join"]');
  await page.waitForSelector(visible('call'), { timeout: 30_000 });
  return clicked;
}

/**
 * What the driver's init script rewrites in the subscriber page's remote descriptions: the
 * publisher's relay (which kham announces) to the subscriber's.
 * @param {string} relayIp
 * @returns {[string, string]}
 */
export function subscriberRewrite(relayIp) {
  return [relayIp, subscriberRelayIp(relayIp)];
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
  /** @type {Awaited<ReturnType<typeof startRelay>>[]} */
  const relays = [];
  const stopAll = async () => {
    await Promise.all(relays.map((r) => r.stop()));
    await kham.stop();
  };
  try {
    // One relay per side, each giving every client it sees that side's link: a browser reaches
    // a relay from one address per local interface (eth0, Janus's veth...), so numbering clients
    // by first datagram would hand a publisher's second address the subscriber's link. kham
    // announces the publisher's relay; the subscriber page rewrites that address to its own
    // relay's in what the server sends it (`subscriberRewrite`, applied by stats.mjs).
    // Seeds as for Janus: the publisher's relay gets seed, the subscriber's seed + 1.
    const sides = [
      { side: 'publisher', ip: ctx.relayIp, args: ctx.linkArgs.publisher, seed: ctx.seed },
      { side: 'subscriber', ip: subscriberRelayIp(ctx.relayIp), args: ctx.linkArgs.subscriber, seed: ctx.seed + 1 },
    ];
    for (const { side, ip, args, seed } of sides) {
      relays.push(await startRelay({
        relayBin: ctx.relayBin, workDir: ctx.workDir, name: `${ctx.name}-${side}`, seed, log: ctx.log,
        listen: `${ip}:${kham.udpPort}`, upstream: `127.0.0.1:${kham.udpPort}`, clients: [], fallback: specEntry(args),
      }));
    }
    const room = `bq-${ctx.name.replace(/_/g, '-')}-${Date.now().toString(36)}`;
    const doctor = await kham.joinLink({ room, identity: 'dr-bench', name: 'BS. Bench', role: 'doctor' });
    const observer = await kham.joinLink({ room, identity: 'sub-bench', name: 'Trạm y tế bench', role: 'observer' });
    const admin = await kham.adminToken();

    await join(ctx.publisher, doctor);
    // Wait until the publisher's media flows before the subscriber appears (t0 then means the
    // same as for the other configurations). Audio: with nobody subscribed, dynacast may pause
    // video.
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
      relays: relays.map((r) => r.info),
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
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
