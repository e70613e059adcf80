// Smoke test of the browser harness itself, before any tablet page exists: Chromium
// starts in this sandbox, reaches the service, emulates a touch tablet in both
// orientations, keeps the app's CSP in force, and axe-core can both pass and fail.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import {
  TABLETS, baseUrl, checkA11y, collectConsoleErrors, launchBrowser, newTablet, shot,
} from './harness.mjs';

const ACCESSIBLE = '<!doctype html><html lang="en"><head><title>t</title></head>'
  + '<body><main><h1>ok</h1><button>Go</button></main></body></html>';
// Two serious/critical faults: an image without alt text, a button without a name.
const INACCESSIBLE = '<!doctype html><html lang="en"><head><title>t</title></head>'
  + '<body><main><h1>bad</h1><img src="data:,"><button></button></main></body></html>';

const DEVICE_WIDTH = '<!doctype html><html lang="en"><head><title>t</title>'
  + '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
  + '<body><main><h1>size</h1></main></body></html>';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

for (const orientation of Object.keys(TABLETS)) {
  describe(`tablet, ${orientation}`, () => {
    let context;
    let page;
    let errors;
    before(async () => {
      context = await newTablet(browser, orientation);
      page = await context.newPage();
      errors = collectConsoleErrors(page);
    });
    after(async () => { await context?.close(); });

    test('the FHIR metadata answers with a CapabilityStatement and the CSP', async () => {
      const response = await page.goto(`${baseUrl()}/fhir/metadata`);
      assert.equal(response.status(), 200);
      const headers = response.headers();
      assert.match(headers['content-type'], /json/);
      assert.ok(headers['content-security-policy'], 'no Content-Security-Policy header');
      assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
      assert.equal(headers['x-content-type-options'], 'nosniff');
      const body = await response.json();
      assert.equal(body.resourceType, 'CapabilityStatement');
      assert.deepEqual(errors, []);
    });

    test('the context emulates a touch tablet of the right size', async () => {
      // isMobile lays out pages without a viewport meta 980 px wide, as real tablets
      // do; the app's pages declare width=device-width, so measure one that does.
      await page.setContent(DEVICE_WIDTH);
      const seen = await page.evaluate(() => ({
        touchPoints: navigator.maxTouchPoints,
        coarse: matchMedia('(pointer: coarse)').matches,
        width: window.innerWidth,
        height: window.innerHeight,
        language: navigator.language,
      }));
      assert.ok(seen.touchPoints > 0, `navigator.maxTouchPoints = ${seen.touchPoints}`);
      assert.ok(seen.coarse, 'matchMedia("(pointer: coarse)") does not match');
      assert.deepEqual({ width: seen.width, height: seen.height }, TABLETS[orientation]);
      assert.equal(seen.language, 'en-GB');
    });
  });
}

describe('accessibility checker', () => {
  let context;
  let page;
  before(async () => {
    context = await newTablet(browser, 'landscape');
    page = await context.newPage();
  });
  after(async () => { await context?.close(); });

  test('an accessible page passes', async () => {
    await page.setContent(ACCESSIBLE);
    const results = await checkA11y(page, 'accessible sample');
    assert.ok(Array.isArray(results.violations));
    const file = await shot(page, 'smoke: accessible sample / landscape');
    assert.match(file, /smoke-accessible-sample-landscape\.png$/);
    assert.ok(existsSync(file), `no screenshot at ${file}`);
  });

  test('a page with serious violations fails, naming each rule', async () => {
    await page.setContent(INACCESSIBLE);
    await assert.rejects(checkA11y(page, 'broken sample'), (error) => {
      assert.match(error.message, /^broken sample: 2 serious\/critical/);
      assert.match(error.message, /image-alt/);
      assert.match(error.message, /button-name/);
      assert.deepEqual(error.violations.map((v) => v.id).sort(), ['button-name', 'image-alt']);
      return true;
    });
  });

  test("axe runs under the app's CSP, and the CSP blocks inline script", async () => {
    // A page of the app itself (its HTML 404), so the real CSP header applies.
    const errors = collectConsoleErrors(page);
    const response = await page.goto(`${baseUrl()}/no-such-page`);
    assert.equal(response.status(), 404);
    assert.ok(response.headers()['content-security-policy']);
    await checkA11y(page, 'app 404 page');
    const ran = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.inlineRan = true';
      document.head.append(script);
      return window.inlineRan === true;
    });
    assert.equal(ran, false, 'an inline <script> ran: the CSP is not in force');
    await page.waitForTimeout(100); // the violation report is asynchronous
    assert.ok(errors.some((e) => /Content Security Policy/.test(e)),
      `the CSP violation was not collected: ${JSON.stringify(errors)}`);
  });
});
