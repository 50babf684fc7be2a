// Launching Debian's Chromium for the browser tests, with a fake camera and microphone.
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.KHAM_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

/** Starts Chromium with a fresh temporary profile (playwright makes and removes it). */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: false, // --headless=new is passed explicitly above
    args: CHROMIUM_ARGS,
  });
}

/** Content-Security-Policy violations seen on any page since the last takeCspViolations(). */
const cspViolations = [];

/** Returns and clears the violations collected so far (tests assert it is empty). */
export function takeCspViolations() {
  return cspViolations.splice(0);
}

/**
 * A page in its own browser context (own storage, like a separate device). Content-Security-Policy
 * violations (Chromium's console report, and the page's `securitypolicyviolation` events, which
 * also catch reports Chromium does not print) are collected for takeCspViolations().
 * @param {import('playwright-core').Browser} browser
 * @param {{width?: number, height?: number, name?: string, deviceScaleFactor?: number}} [opts]
 */
export async function newPage(browser, { width = 1024, height = 700, name = 'page', deviceScaleFactor = 1 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor });
  const page = await context.newPage();
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  page.on('console', (m) => {
    if (/Content Security Policy|CSP violation/.test(m.text())) cspViolations.push(`[${name}] ${m.text()}`);
    if (m.type() === 'error' || m.type() === 'warning' || process.env.KHAM_TEST_VERBOSE) {
      console.log(`[${name} ${m.type()}] ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => console.log(`[${name} pageerror] ${e.message}`));
  return page;
}

/** Where screenshots go: $KHAM_SCREENSHOTS or a temp dir. */
export function screenshotDir() {
  const dir = process.env.KHAM_SCREENSHOTS || path.join(os.tmpdir(), 'kham-screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** @param {import('playwright-core').Page} page @param {string} name */
export async function screenshot(page, name) {
  const file = path.join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}
