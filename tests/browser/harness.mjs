// Shared helpers for every browser spec (tests/browser/*.spec.mjs).
//
// The specs drive Debian's Chromium (/usr/bin/chromium) through playwright-core: no
// browser is ever downloaded. Each spec runs in its own node process against the
// service started by tests/browser/test_browser.py (BASE_URL), so a spec creates the
// data it needs itself.
//
// Two rules the helpers keep so the tests see what a real tablet sees:
//  - the app's Content-Security-Policy stays in force (no bypassCSP), so a page that
//    only works with inline script or style fails here as it would in production;
//  - axe-core is evaluated through the DevTools protocol, not injected as an inline
//    <script> the CSP would (rightly) block.

import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Debian's Chromium; never a Playwright-downloaded build. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags this sandbox needs: no sandbox as root, no GPU, and no background traffic
 * (this machine's network is closed; Chromium's update, sync and metrics requests
 * would otherwise be refused, many at a time, at every start). Playwright adds
 * --headless (from `headless: true`) and a fresh --user-data-dir itself. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The tablets the exam app is built for, in CSS pixels (an iPad-class 4:3 screen). */
export const TABLETS = Object.freeze({
  landscape: Object.freeze({ width: 1024, height: 768 }),
  portrait: Object.freeze({ width: 768, height: 1024 }),
});

/** Impacts that fail a page; 'minor' and 'moderate' are reported by axe but tolerated. */
export const BLOCKING_IMPACTS = Object.freeze(['serious', 'critical']);

/** The service under test, without a trailing slash (from BASE_URL). */
export function baseUrl() {
  const base = process.env.BASE_URL;
  if (!base) {
    throw new Error('BASE_URL is not set: run the browser specs through '
      + 'tests/browser/test_browser.py, or set BASE_URL to a running service');
  }
  return base.replace(/\/+$/, '');
}

/** Launch headless Chromium with the sandbox's flags; `options` adds launch options. */
export async function launchBrowser(options = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    ...options,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}

/** The clinician test_browser.py created for the specs (USERNAME, PASSWORD). */
export function clinician() {
  const { USERNAME: username, PASSWORD: password, DISPLAY_NAME: name } = process.env;
  if (!username || !password) {
    throw new Error('USERNAME and PASSWORD are not set: run the specs through test_browser.py');
  }
  return { username, password, name };
}

/** Sign `context` in through the login page, as a person does. */
export async function signIn(context) {
  const { username, password } = clinician();
  const page = await context.newPage();
  await page.goto(`${baseUrl()}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')),
    page.click('#login button[type=submit]')]);
  await page.close();
}

/** A fresh browser context emulating a tablet held in `orientation`: touch, a coarse
 * pointer, 2x pixels, British English. Cookies and storage are its own. It is signed
 * in as the specs' clinician unless `options.signedOut`. */
export async function newTablet(browser, orientation = 'landscape', options = {}) {
  const viewport = TABLETS[orientation];
  if (!viewport) {
    throw new Error(`unknown orientation ${orientation}; use one of ${Object.keys(TABLETS)}`);
  }
  const { signedOut, ...contextOptions } = options;
  const context = await browser.newContext({
    viewport: { ...viewport },
    screen: { ...viewport },
    hasTouch: true,
    isMobile: true,
    deviceScaleFactor: 2,
    locale: 'en-GB',
    timezoneId: 'Europe/London',
    ...contextOptions,
    bypassCSP: false, // the app's CSP must hold under test, whatever `options` says
  });
  if (!signedOut) {
    await signIn(context);
  }
  return context;
}

/** Record uncaught page errors and console errors (CSP violations included) of `page`
 * from now on. Returns a live array of readable strings: assert it is empty at the end.
 * A missing /favicon.ico is not recorded: Chromium asks for it on its own, at a moment
 * of its choosing, for any page that names no icon, so it would make specs flaky. */
export function collectConsoleErrors(page) {
  const errors = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const { url, lineNumber } = message.location();
    if (/^Failed to load resource/.test(message.text()) && /\/favicon\.ico$/.test(url ?? '')) {
      return;
    }
    errors.push(`console.error: ${message.text()}${url ? ` (${url}:${lineNumber})` : ''}`);
  });
  return errors;
}

let axeSource;

/** Run axe-core on the page as it is now. Throws an Error listing every serious or
 * critical violation (rule id, help, up to 5 target selectors each); returns axe's
 * full result otherwise. `label` names the page/state in the message. */
export async function checkA11y(page, label = page.url()) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) {
    await page.evaluate(axeSource); // via CDP: not subject to the page's CSP
  }
  const results = await page.evaluate(() => window.axe.run(document, {
    resultTypes: ['violations'],
  }));
  const blocking = results.violations.filter((v) => BLOCKING_IMPACTS.includes(v.impact));
  if (blocking.length > 0) {
    const lines = blocking.map((v) => {
      const targets = v.nodes.slice(0, 5).map((n) => `      ${n.target.join(' ')}`);
      const more = v.nodes.length > 5 ? [`      ... and ${v.nodes.length - 5} more`] : [];
      return [`  - ${v.id} (${v.impact}): ${v.help} [${v.helpUrl}]`, ...targets, ...more]
        .join('\n');
    });
    const error = new Error(`${label}: ${blocking.length} serious/critical accessibility `
      + `violation(s):\n${lines.join('\n')}`);
    error.violations = blocking;
    error.results = results;
    throw error;
  }
  return results;
}

/** Save a full-page PNG of `page` as `<ARTIFACTS_DIR>/<name>.png` and return its path. */
export async function shot(page, name) {
  const dir = process.env.ARTIFACTS_DIR || path.join(HERE, '..', 'artifacts', 'screenshots');
  mkdirSync(dir, { recursive: true });
  const safe = String(name).replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '')
    || 'screenshot';
  const file = path.join(dir, safe.endsWith('.png') ? safe : `${safe}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
