// The call survives the network (issue 13), with real Chromium in network namespaces the test
// builds and always removes: the station's browser runs in namespace "client" with two uplinks
// ("LTE" and "Wi-Fi") behind namespace "router", whose NAT gives each uplink its own public
// address; kham and the doctor's browser run in this (the host's) namespace, at 198.51.100.2 on
// a veth to the router.
//
//   station Chromium [client: c0 10.1.0.2 | c1 10.2.0.2] -> [router: SNAT c0 -> .1, c1 -> .3]
//     -> 198.51.100.2 (host): kham serve --dev, the doctor's Chromium
//
// Cases, one call:
//   1. network switch: the LTE uplink disappears and the default route moves to Wi-Fi (a new
//      local and public address). Same peer connection, same participant id, no leave or join
//      seen by the doctor; audio and video flow again both ways (the times from the switch are
//      logged; issue target: audio 2 s, video 3 s).
//   2. outages: the router drops everything for 5 s, 10 s, then 20 s (longer than the
//      browser's and str0m's 15 s ICE timeouts), then forwards again (same addresses): the same
//      session, no rejoin; times from the restore are logged;
//   2b. a NAT rebinding: the router's NAT forgets the station's UDP mappings and maps it to a
//      new public address (as a carrier NAT does after an idle timeout): audio both ways again
//      (the times are logged; issue target 3 s), same participant, no leave or join;
//   3. an outage of 45 s, past the 30 s reconnect grace: the doctor sees the station leave once
//      (`connection_lost`), and the station's page joins again by itself as a new participant;
//   4. a hospital firewall: the router drops all UDP from the client; a second station joins
//      and its call runs over ICE-TCP (selected pair tcp), audio both ways;
//   5. a firewall that lets only TCP through to the web server and to port 443: a kham with
//      `[turn]` pointing at Debian's coturn (TURN over TLS on 198.51.100.2:443, a self-signed
//      certificate, which the station's Chromium is told to accept: it checks TURN servers'
//      certificates) carries a new call through the relay (selected pair relay over tls), audio
//      both ways; the same coturn gives a correctly signed but expired credential no relay.
// Needs root (ip netns, nftables); run.sh installs nftables and coturn.
//
//   node --test network.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, newPage } from './browser.mjs';
import { startKham, freeTcpPort, freeUdpPort } from './server.mjs';
import { audioBothWays, audioFrom, selectedPair } from './rtc-stats.mjs';

const tag = String(process.pid % 100000);
const NS_C = `kham-c${tag}`;
const NS_R = `kham-r${tag}`;
const HOST_IF = `khv${tag}`;
const SERVER = '198.51.100.2';

/** @param {string[]} args */
const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
/** @param {string} ns @param {string} rules */
const nft = (ns, rules) => execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules });

function down() {
  for (const ns of [NS_C, NS_R]) {
    try { ip('netns', 'del', ns); } catch { /* not there */ }
  }
  try { ip('link', 'del', HOST_IF); } catch { /* went with the namespace */ }
}

function up() {
  down();
  ip('netns', 'add', NS_C);
  ip('netns', 'add', NS_R);
  // No IPv6 in the namespaces: link-local addresses appearing after the links come up are
  // network changes to Chromium, and a page loading then fails with ERR_NETWORK_CHANGED (one
  // CI run: the station's join page never loaded).
  for (const ns of [NS_C, NS_R]) {
    for (const key of ['all', 'default']) {
      execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${key}.disable_ipv6=1`]);
    }
  }
  ip('-n', NS_C, 'link', 'set', 'lo', 'up');
  ip('-n', NS_R, 'link', 'set', 'lo', 'up');
  ip('link', 'add', 'c0', 'netns', NS_C, 'type', 'veth', 'peer', 'name', 'r0', 'netns', NS_R);
  ip('link', 'add', 'c1', 'netns', NS_C, 'type', 'veth', 'peer', 'name', 'r1', 'netns', NS_R);
  ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', 'r9', 'netns', NS_R);
  ip('-n', NS_C, 'addr', 'add', '10.1.0.2/24', 'dev', 'c0');
  ip('-n', NS_C, 'addr', 'add', '10.2.0.2/24', 'dev', 'c1');
  ip('-n', NS_R, 'addr', 'add', '10.1.0.1/24', 'dev', 'r0');
  ip('-n', NS_R, 'addr', 'add', '10.2.0.1/24', 'dev', 'r1');
  ip('-n', NS_R, 'addr', 'add', '198.51.100.1/24', 'dev', 'r9');
  ip('-n', NS_R, 'addr', 'add', '198.51.100.3/24', 'dev', 'r9');
  ip('-n', NS_R, 'addr', 'add', '198.51.100.4/24', 'dev', 'r9');
  execFileSync('sysctl', ['-qw', `net.ipv6.conf.${HOST_IF}.disable_ipv6=1`]);
  ip('addr', 'add', `${SERVER}/24`, 'dev', HOST_IF);
  for (const l of ['c0', 'c1']) ip('-n', NS_C, 'link', 'set', l, 'up');
  for (const l of ['r0', 'r1', 'r9']) ip('-n', NS_R, 'link', 'set', l, 'up');
  ip('link', 'set', HOST_IF, 'up');
  ip('-n', NS_C, 'route', 'add', 'default', 'via', '10.1.0.1', 'dev', 'c0');
  execFileSync('ip', ['netns', 'exec', NS_R, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  nft(NS_R, `table ip nat {
    chain post {
      type nat hook postrouting priority srcnat; policy accept;
      iifname "r0" oifname "r9" snat to 198.51.100.1
      iifname "r1" oifname "r9" snat to 198.51.100.3
    }
  }
  table inet fw {
    chain gate { type filter hook forward priority filter; policy accept; }
  }`);
}

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let hostBrowser;
/** @type {import('playwright-core').Browser} */
let clientBrowser;
/** The HTTP port of case 5's kham (with `[turn]`), known before the browsers start. */
let turnKhamPort = 0;

before(async () => {
  up();
  process.on('exit', down);
  // Chromium in the client namespace: a wrapper that enters it (the debugging pipe's file
  // descriptors pass through exec).
  const wrapper = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kham-netns-')), 'chromium');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS_C} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  kham = await startKham({ host: SERVER });
  turnKhamPort = await freeTcpPort();
  // Camera and microphone need a secure context: plain HTTP on a non-loopback address is one only
  // when named so. The station accepts coturn's self-signed certificate (case 5).
  const origins = `${kham.baseUrl},http://${SERVER}:${turnKhamPort}`;
  const args = [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${origins}`];
  hostBrowser = await chromium.launch({ executablePath: CHROMIUM, headless: false, args });
  clientBrowser = await chromium.launch({ executablePath: wrapper, headless: false, args: [...args, '--ignore-certificate-errors'] });
});

after(async () => {
  await clientBrowser?.close();
  await hostBrowser?.close();
  await kham?.stop();
  down();
});

const ROOM = `netns-${process.pid}-${Date.now().toString(36)}`;

/**
 * @param {import('playwright-core').Browser} browser @param {string} name @param {object} who
 * @param {Awaited<ReturnType<typeof startKham>>} [server]
 */
async function join(browser, name, who, server = kham) {
  const page = await newPage(browser, { name });
  const link = await server.joinLink(who);
  // A page load that a network change interrupts (ERR_NETWORK_CHANGED) is tried again.
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(link);
      await page.waitForSelector('[data-testid="join"]:not([disabled])', { timeout: 10_000 });
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
      console.log(`${name}: join page not ready (${/** @type {Error} */ (err).message.split('\n')[0]}), loading it again`);
    }
  }
  await page.evaluate(() => {
    const client = /** @type {any} */ (window).__kham;
    const log = [];
    /** @type {any} */ (window).__log = log;
    for (const type of ['reconnecting', 'reconnected', 'participantleft', 'participantjoined', 'closed']) {
      client.addEventListener(type, (/** @type {CustomEvent} */ ev) => log.push({ type, at: Date.now(), detail: ev.detail }));
    }
    // The browser's own view of the path: ICE states, local candidates gathered, and each change
    // of the selected pair (its local address and type), for the switch and outage timelines.
    const Pc = window.RTCPeerConnection;
    const note = (/** @type {string} */ type) => log.push({ type, at: Date.now() });
    /** @type {any} */ (window).RTCPeerConnection = function (/** @type {any[]} */ ...args) {
      const pc = new Pc(...args);
      pc.addEventListener('iceconnectionstatechange', () => note(`ice ${pc.iceConnectionState}`));
      pc.addEventListener('icecandidate', (ev) => { if (ev.candidate) note(`candidate ${ev.candidate.type} ${ev.candidate.protocol} ${ev.candidate.address}`); });
      let watched = false;
      pc.addEventListener('connectionstatechange', () => {
        const ice = pc.getSenders().concat(/** @type {any} */ (pc.getReceivers()))[0]?.transport?.iceTransport;
        if (watched || !ice) return;
        watched = true;
        ice.addEventListener('selectedcandidatepairchange', () => {
          const pair = ice.getSelectedCandidatePair();
          note(`pair ${pair?.local?.type} ${pair?.local?.address} -> ${pair?.remote?.address}`);
        });
      });
      return pc;
    };
    /** @type {any} */ (window).RTCPeerConnection.prototype = Pc.prototype;
  });
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  return page;
}

/**
 * Starts polling, every 50 ms, the audio packets and video frames `page` receives; the returned
 * function stops it and says when each started flowing again after `since` (ms since epoch).
 * @param {import('playwright-core').Page} page
 */
async function watch(page) {
  await page.evaluate(() => {
    const client = /** @type {any} */ (window).__kham;
    const w = { samples: /** @type {{at: number, audio: number, frames: number}[]} */ ([]), on: true };
    /** @type {any} */ (window).__watch = w;
    (async () => {
      while (w.on) {
        let audio = 0;
        let frames = 0;
        if (client.pc) {
          (await client.pc.getStats()).forEach((/** @type {any} */ s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'audio') audio += s.packetsReceived;
            if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
          });
        }
        w.samples.push({ at: Date.now(), audio, frames });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  });
  /** @param {number} since */
  return async (since) => {
    const samples = await page.evaluate(() => {
      const w = /** @type {any} */ (window).__watch;
      w.on = false;
      return w.samples;
    });
    // Flowing again: the first sample after `since` from which the counter rises in each of the
    // next four steps of `step` samples (the time is that of the first sample that counted
    // more): audio (50 packets a second) in each 50 ms for 200 ms;
    // video in each 250 ms for 1 s (at least 4 frames a second: moving again, at whatever frame
    // rate the subscriber's estimate allows; before 2026-12-05 this asked for a frame every
    // 50 ms, 20 fps, which measured the ramp after the switch rather than the return).
    const back = (/** @type {'audio'|'frames'} */ key, step = 1) => {
      for (let i = 0; i + 4 * step < samples.length; i++) {
        if (samples[i].at < since) continue;
        let rising = true;
        for (let k = 0; k < 4; k++) rising &&= samples[i + (k + 1) * step][key] > samples[i + k * step][key];
        if (!rising) continue;
        // Back at the first sample that counted more than sample i.
        let j = i + 1;
        while (samples[j][key] <= samples[i][key]) j++;
        return samples[j].at - since;
      }
      return null;
    };
    // Video frames decoded in each second from `since` (how video ramps back, beyond "back").
    const fps = [];
    for (let s = 0; s < 8; s++) {
      const at = (/** @type {number} */ t) => samples.find((x) => x.at >= t)?.frames;
      const a = at(since + s * 1000);
      const b = at(since + (s + 1) * 1000);
      if (a === undefined || b === undefined) break;
      fps.push(b - a);
    }
    return { audio: back('audio'), video: back('frames', 5), fps };
  };
}

test('a network switch and a 10 s outage: the same session comes back, nobody sees a leave', async () => {
  const doctor = await join(hostBrowser, 'doctor', { room: ROOM, identity: 'bs-dung', name: 'BS Dũng', role: 'doctor' });
  const station = await join(clientBrowser, 'station', { room: ROOM, identity: 'tram-5', name: 'Trạm 5', role: 'station' });
  const stationId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  const pcBefore = await station.evaluate(() => { /** @type {any} */ (window).__pc0 = /** @type {any} */ (window).__kham.pc; return true; });
  assert.ok(pcBefore);
  for (const [name, page] of /** @type {const} */ ([['doctor', doctor], ['station', station]])) {
    await page.waitForFunction(() => {
      const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-video"]'));
      return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 10;
    }, null, { timeout: 30_000, polling: 200 }).catch(async (err) => {
      for (const [n, p] of /** @type {const} */ ([['doctor', doctor], ['station', station]])) {
        const st = await p.evaluate(() => {
          const pc = /** @type {any} */ (window).__kham.pc;
          if (!pc) return 'no pc';
          const tiles = [...document.querySelectorAll('[data-testid="remote-video"]')].length;
          const states = JSON.stringify([.../** @type {any} */ (window).__kham.videoStates.values()]);
          return pc.getStats().then((/** @type {any} */ stats) => {
            const rtp = [];
            stats.forEach((/** @type {any} */ x) => { if (x.type === 'inbound-rtp') rtp.push(`${x.kind} ${x.packetsReceived} pkts ${x.framesDecoded ?? ''}`); });
            return `${pc.connectionState}/${pc.iceConnectionState}; tiles ${tiles}; ${rtp.join(', ')}; ${states}`;
          });
        });
        console.log(`${n}: ${st}`);
      }
      throw new Error(`${name} decoded no remote video: ${err.message}`);
    });
  }
  const joinedAt = Date.now();
  // Mid-call, not in the first seconds of the estimators' ramp.
  await doctor.waitForTimeout(8_000);

  // 1. The LTE uplink goes away; the default route moves to Wi-Fi (new local and public address).
  let stopDoctor = await watch(doctor);
  let stopStation = await watch(station);
  await new Promise((r) => setTimeout(r, 1_000));
  const switchAt = Date.now();
  ip('-n', NS_C, 'addr', 'flush', 'dev', 'c0');
  ip('-n', NS_C, 'link', 'set', 'c0', 'down');
  ip('-n', NS_C, 'route', 'replace', 'default', 'via', '10.2.0.1', 'dev', 'c1');
  await doctor.waitForTimeout(20_000);
  const toDoctor = await stopDoctor(switchAt);
  const toStation = await stopStation(switchAt);
  console.log(`network switch: station -> doctor audio back after ${toDoctor.audio} ms, video after ${toDoctor.video} ms; doctor -> station audio after ${toStation.audio} ms, video after ${toStation.video} ms`);
  console.log(`frames decoded per second after the switch: doctor ${toDoctor.fps}; station ${toStation.fps}`);
  console.log(`station's SDK: ${JSON.stringify((await station.evaluate(() => /** @type {any} */ (window).__log)).map((e) => [e.type, e.at - switchAt]))}`);
  assert.ok(toDoctor.audio !== null && toStation.audio !== null, 'audio came back both ways');
  // Video comes back both ways by itself. (Before the SDK restarted ICE on a silent path and
  // the server asked for keyframes once the new path was nominated, one CI run saw no video of
  // the station in the 20 s after the switch; since then 1.5-2.7 s, 2026-12-04.)
  assert.ok(toDoctor.video !== null && toStation.video !== null, 'video came back both ways within 20 s');
  assert.equal(await station.evaluate(() => /** @type {any} */ (window).__kham.pc === /** @type {any} */ (window).__pc0), true, 'same peer connection');
  assert.equal(await station.evaluate(() => /** @type {any} */ (window).__kham.me.id), stationId, 'same participant');

  // 2. Outages at the router of 5, 10 and 20 s (past the ICE timeouts, within the grace), each
  // followed by the same path again: audio back both ways, the same participant.
  /** @param {number} secs @param {number} watchAfter ms */
  const outage = async (secs, watchAfter) => {
    const fromDoctor = await watch(doctor);
    const fromStation = await watch(station);
    nft(NS_R, 'add rule inet fw gate drop');
    await doctor.waitForTimeout(secs * 1000);
    const restoreAt = Date.now();
    nft(NS_R, 'flush chain inet fw gate');
    await doctor.waitForTimeout(watchAfter);
    const toDoctorO = await fromDoctor(restoreAt);
    const toStationO = await fromStation(restoreAt);
    console.log(`${secs} s outage: station -> doctor audio back ${toDoctorO.audio} ms after the restore, video ${toDoctorO.video} ms; doctor -> station audio ${toStationO.audio} ms, video ${toStationO.video} ms`);
    console.log(`station's SDK: ${JSON.stringify((await station.evaluate(() => /** @type {any} */ (window).__log)).filter((e) => e.at >= restoreAt - secs * 1000).map((e) => [e.type, e.at - restoreAt]))}`);
    assert.ok(toDoctorO.audio !== null && toStationO.audio !== null, `audio came back both ways after ${secs} s`);
    assert.equal(await station.evaluate(() => /** @type {any} */ (window).__kham.me.id), stationId, `same participant after ${secs} s`);
  };
  await outage(5, 10_000);
  await outage(10, 20_000);
  await outage(20, 25_000);

  // 2b. A NAT rebinding: the station (now on Wi-Fi, mapped to .3) gets mapped to .4, its UDP
  // mappings forgotten; the WebSocket's TCP mapping stays.
  stopDoctor = await watch(doctor);
  stopStation = await watch(station);
  await doctor.waitForTimeout(1_000);
  const rebindAt = Date.now();
  nft(NS_R, `flush chain ip nat post
    add rule ip nat post iifname "r0" oifname "r9" snat to 198.51.100.1
    add rule ip nat post iifname "r1" oifname "r9" snat to 198.51.100.4`);
  // conntrack reports how many it deleted on stderr (and exits 1 when none): at least the
  // station's media flow must have gone, or this case tests nothing.
  const forgot = spawnSync('ip', ['netns', 'exec', NS_R, 'conntrack', '-D', '-p', 'udp'], { encoding: 'utf8' });
  const deleted = Number(/(\d+) flow entries have been deleted/.exec(`${forgot.stdout}${forgot.stderr}`)?.[1] ?? 0);
  assert.ok(deleted >= 1, `the router forgot the station's UDP mappings: ${forgot.stdout}${forgot.stderr}${forgot.error ?? ''}`);
  await doctor.waitForTimeout(15_000);
  const toDoctorR = await stopDoctor(rebindAt);
  const toStationR = await stopStation(rebindAt);
  console.log(`NAT rebinding: station -> doctor audio back ${toDoctorR.audio} ms after it, video ${toDoctorR.video} ms; doctor -> station audio ${toStationR.audio} ms, video ${toStationR.video} ms`);
  console.log(`station's SDK: ${JSON.stringify((await station.evaluate(() => /** @type {any} */ (window).__log)).filter((e) => e.at >= rebindAt).map((e) => [e.type, e.at - rebindAt]))}`);
  assert.ok(toDoctorR.audio !== null && toStationR.audio !== null, 'audio came back both ways after the rebinding');
  assert.equal(await station.evaluate(() => /** @type {any} */ (window).__kham.me.id), stationId, 'same participant after the rebinding');

  const seen = (await doctor.evaluate(() => /** @type {any} */ (window).__log)).filter((e) => e.at >= joinedAt);
  assert.deepEqual(seen.filter((e) => e.type === 'participantleft' || e.type === 'participantjoined').map((e) => e.type), [], JSON.stringify(seen));
  assert.deepEqual((await station.evaluate(() => /** @type {any} */ (window).__log)).filter((e) => e.type === 'closed'), []);
});

test('an outage past the reconnect grace: one leave, then the station joins again by itself', async () => {
  const doctor = /** @type {import('playwright-core').Page} */ (hostBrowser.contexts()[0].pages()[0]);
  const station = /** @type {import('playwright-core').Page} */ (clientBrowser.contexts()[0].pages()[0]);
  const oldId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  const from = Date.now();
  nft(NS_R, 'add rule inet fw gate drop');
  await doctor.waitForFunction((id) => /** @type {any} */ (window).__log.some((e) => e.type === 'participantleft' && e.detail.id === id), oldId, { timeout: 60_000, polling: 250 });
  const leftAfter = Date.now() - from;
  nft(NS_R, 'flush chain inet fw gate');
  const restoreAt = Date.now();
  // The station's page, told (or finding) that its session is gone, joins anew.
  await station.waitForFunction((old) => {
    const c = /** @type {any} */ (window).__kham;
    return !c.reconnecting && c.status === 'admitted' && c.me && c.me.id !== old;
  }, oldId, { timeout: 60_000, polling: 250 });
  const newId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await doctor.waitForFunction((id) => {
    const v = /** @type {HTMLVideoElement|null} */ (document.querySelector(`[data-participant-id="${id}"] video`));
    return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, newId, { timeout: 30_000, polling: 250 });
  console.log(`outage past the grace: the doctor saw the station leave ${leftAfter} ms into it; it was back as a new participant, video decoding, ${Date.now() - restoreAt} ms after the restore`);
  const log = (await doctor.evaluate(() => /** @type {any} */ (window).__log)).filter((e) => e.at >= from);
  const leaves = log.filter((e) => e.type === 'participantleft');
  assert.equal(leaves.length, 1, JSON.stringify(log));
  assert.equal(leaves[0].detail.reason, 'connection_lost');
  assert.ok(leftAfter >= 30_000, `not before the grace (${leftAfter} ms)`);
  assert.ok(log.some((e) => e.type === 'participantjoined' && e.detail.participant.id === newId), 'joined again');
});

test('behind a firewall that drops UDP the call runs over ICE-TCP', async () => {
  nft(NS_R, 'add rule inet fw gate meta l4proto udp drop');
  try {
    const doctor = /** @type {import('playwright-core').Page} */ (hostBrowser.contexts()[0].pages()[0]);
    const t0 = Date.now();
    const station = await join(clientBrowser, 'station-2', { room: ROOM, identity: 'tram-6', name: 'Trạm 6', role: 'station' });
    await station.waitForFunction(() => {
      const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-video"]'));
      return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    }, null, { timeout: 30_000, polling: 100 });
    const pair = (await selectedPair(station))?.local;
    const stationId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
    console.log(`UDP dropped at the router: first remote frame ${Date.now() - t0} ms after the join page opened; selected pair ${pair}`);
    assert.equal(pair, 'tcp');
    // The doctor hears this station: its audio track's packets rise over 2 s (one CI run: 49
    // in the first window after the first packet on TCP, so windows are retried: audioFrom).
    const heard = await audioFrom(doctor, stationId);
    console.log(`the doctor received ${JSON.stringify(heard.windows)} audio packets per 2 s from the station on ICE-TCP`);
    assert.ok(heard.ok, `the doctor hears the station (${JSON.stringify(heard.windows)})`);
  } finally {
    nft(NS_R, 'flush chain inet fw gate');
  }
});

test('behind a firewall that lets only TCP 443 through the call is relayed by coturn over TLS', async () => {
  const secret = crypto.randomBytes(18).toString('base64url');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kham-turns-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', `/CN=${SERVER}`, '-addext', `subjectAltName=IP:${SERVER}`], { stdio: 'ignore' });
  const plainPort = await freeUdpPort();
  fs.writeFileSync(path.join(dir, 'turnserver.conf'), [
    'use-auth-secret', `static-auth-secret=${secret}`, 'realm=kham.test',
    `listening-ip=${SERVER}`, `relay-ip=${SERVER}`, `listening-port=${plainPort}`, 'tls-listening-port=443',
    `cert=${cert}`, `pkey=${key}`, 'no-dtls', 'no-cli', 'fingerprint',
    'min-port=49300', 'max-port=49400', 'log-file=stdout', 'simple-log', 'verbose',
    `pidfile=${path.join(dir, 'turnserver.pid')}`, `userdb=${path.join(dir, 'turndb')}`,
  ].join('\n'));
  let coturnLog = '';
  const coturn = spawn('turnserver', ['-c', path.join(dir, 'turnserver.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [coturn.stdout, coturn.stderr]) s.on('data', (d) => { coturnLog = (coturnLog + d).slice(-300_000); });
  /** @type {Awaited<ReturnType<typeof startKham>> | undefined} */
  let turnKham;
  /** @type {import('playwright-core').Page[]} */
  const pages = [];
  try {
    turnKham = await startKham({
      host: SERVER,
      httpPort: turnKhamPort,
      extraEnv: {
        KHAM_TURN__URLS: JSON.stringify([`turn:${SERVER}:${plainPort}?transport=udp`, `turns:${SERVER}:443?transport=tcp`]),
        KHAM_TURN__SECRET: secret,
      },
    });
    // The hospital's firewall: from the station only TCP to the web server and to port 443.
    nft(NS_R, `add rule inet fw gate iifname { "r0", "r1" } ip daddr ${SERVER} tcp dport { ${turnKhamPort}, 443 } accept
      add rule inet fw gate iifname { "r0", "r1" } drop`);
    const room = `${ROOM}-turns`;
    const doctor = await join(hostBrowser, 'doctor-3', { room, identity: 'bs-lan', name: 'BS Lan', role: 'doctor' }, turnKham);
    pages.push(doctor);
    const t0 = Date.now();
    const station = await join(clientBrowser, 'station-3', { room, identity: 'tram-7', name: 'Trạm 7', role: 'station' }, turnKham);
    pages.push(station);
    await station.waitForFunction(() => {
      const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-video"]'));
      return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    }, null, { timeout: 30_000, polling: 100 }).catch((err) => {
      throw new Error(`${err.message}\ncoturn: ${coturnLog.slice(-4000)}`);
    });
    const pair = await selectedPair(station);
    console.log(`only TCP 443: first remote frame ${Date.now() - t0} ms after the join page opened; station's pair ${JSON.stringify(pair)}`);
    assert.equal(pair?.type, 'relay');
    assert.equal(pair?.relayProtocol, 'tls');
    const audio = await audioBothWays(station, doctor);
    console.log(`audio packets per 2 s through TURN over TLS (station, doctor): ${JSON.stringify(audio.windows)}`);
    assert.ok(audio.ok, `audio both ways in one of three 2 s windows: ${JSON.stringify(audio.windows)}`);
    // Operators see a relayed session (coturn shares the host's address with the doctor's
    // browser here, so the doctor may count as relayed too: at least one).
    const res = await fetch(`${turnKham.baseUrl}/metrics`, { headers: { authorization: `Bearer ${await turnKham.adminToken()}` } });
    const metrics = await res.text();
    const sessions = metrics.split('\n').filter((l) => l.startsWith('kham_media_sessions')).join(', ');
    console.log(`metrics: ${sessions}`);
    assert.match(sessions, /path="relayed"\} [1-9]/, `HTTP ${res.status}: ${metrics.slice(0, 300)}`);

    // The same coturn over TLS refuses an expired credential (correctly signed): no relay
    // candidate, where the one kham handed out gets one.
    const servers = await station.evaluate(() => /** @type {any} */ (window).__kham._iceServers);
    const entry = servers.find((/** @type {any} */ s) => [].concat(s.urls).some((u) => u.startsWith('turns:')));
    assert.ok(entry, JSON.stringify(servers));
    const tlsServer = { ...entry, urls: [].concat(entry.urls).filter((u) => u.startsWith('turns:')) };
    const past = Math.floor(Date.now() / 1000) - 60;
    const username = `${past}:p-expired`;
    const expired = { urls: tlsServer.urls, username, credential: crypto.createHmac('sha1', secret).update(username).digest('base64') };
    const relayCandidates = (/** @type {any} */ server) => station.evaluate(async (server) => {
      const pc = new RTCPeerConnection({ iceServers: [server], iceTransportPolicy: 'relay' });
      pc.createDataChannel('probe');
      const found = [];
      pc.addEventListener('icecandidate', (ev) => { if (ev.candidate?.type === 'relay') found.push(ev.candidate.relayProtocol); });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => setTimeout(r, 5_000));
      pc.close();
      return found;
    }, server);
    const [fresh, stale] = await Promise.all([relayCandidates(tlsServer), relayCandidates(expired)]);
    console.log(`relay candidates over TLS: kham's credential ${JSON.stringify(fresh)}, an expired one ${JSON.stringify(stale)}`);
    assert.ok(fresh.length > 0, 'the credential kham handed out gets a relay');
    assert.deepEqual(stale, [], 'an expired credential gets none');
    assert.match(coturnLog, /p-expired/, 'coturn was asked with the expired user');
  } finally {
    nft(NS_R, 'flush chain inet fw gate');
    for (const p of pages) await p.close();
    await turnKham?.stop();
    coturn.kill('SIGTERM');
  }
});
