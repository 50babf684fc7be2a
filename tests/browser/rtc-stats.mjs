// What a page's peer connection (the SDK's, `window.__kham.pc`) reports, for the connectivity
// tests: the selected candidate pair, and audio packets received over a window.

/**
 * The selected candidate pair of the page's transport, or null (no peer connection or no pair).
 * @param {import('playwright-core').Page} page
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).__kham.pc;
    if (!pc) return null;
    /** @type {Record<string, any>} */
    const byId = {};
    (await pc.getStats()).forEach((/** @type {any} */ s) => { byId[s.id] = s; });
    const transport = Object.values(byId).find((s) => s.type === 'transport');
    const p = transport && byId[transport.selectedCandidatePairId];
    const local = p && byId[p.localCandidateId];
    const remote = p && byId[p.remoteCandidateId];
    if (!local || !remote) return null;
    return {
      local: local.protocol, type: local.candidateType, relayProtocol: local.relayProtocol,
      remote: remote.protocol, port: remote.port, tcpType: remote.tcpType, state: transport.iceState,
    };
  });
}

/**
 * Audio packets the page received during `ms`, from everyone or from one participant (then the
 * window starts once its first packet arrived, waiting up to 10 s).
 * @param {import('playwright-core').Page} page
 * @param {number} [ms]
 * @param {string|null} [participantId]
 */
export function audioPacketsIn(page, ms = 2000, participantId = null) {
  return page.evaluate(async ({ ms, participantId }) => {
    const client = /** @type {any} */ (window).__kham;
    const sample = async () => {
      let n = 0;
      (await client.pc.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
        if (participantId === null || client.participantForMid(s.mid) === participantId) n += s.packetsReceived;
      });
      return n;
    };
    if (participantId !== null) {
      for (let i = 0; i < 100 && (await sample()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    }
    const a = await sample();
    await new Promise((r) => setTimeout(r, ms));
    return (await sample()) - a;
  }, { ms, participantId });
}

/**
 * Measures 2 s windows with `measure` (packets per page, 50 a second are sent), up to `tries`
 * windows, until every page reaches `min`. The first window can start inside the call's opening
 * transient (an estimate still probing, a relay's TCP stream catching up on a loaded machine, a
 * new participant's track just added), so a window short of `min` is retried, not taken as the
 * verdict; every window is returned.
 * @param {() => Promise<number[]>} measure
 * @param {{ min?: number, tries?: number }} opts
 */
async function audioWindows(measure, { min = 70, tries = 3 }) {
  /** @type {number[][]} */
  const windows = [];
  for (let i = 0; i < tries; i++) {
    const w = await measure();
    windows.push(w);
    if (w.every((n) => n >= min)) return { ok: true, windows };
  }
  return { ok: false, windows };
}

/**
 * Audio received by two pages over the same 2 s windows (`audioWindows`).
 * @param {import('playwright-core').Page} a
 * @param {import('playwright-core').Page} b
 * @param {{ min?: number, tries?: number }} [opts]
 */
export function audioBothWays(a, b, opts = {}) {
  return audioWindows(() => Promise.all([audioPacketsIn(a), audioPacketsIn(b)]), opts);
}

/**
 * Audio `page` received from participant `id` over 2 s windows (`audioWindows`).
 * @param {import('playwright-core').Page} page
 * @param {string} id
 * @param {{ min?: number, tries?: number }} [opts]
 */
export function audioFrom(page, id, opts = {}) {
  return audioWindows(async () => [await audioPacketsIn(page, 2000, id)], opts);
}
