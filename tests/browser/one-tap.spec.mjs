// A faster, safer exam at both iPad sizes: the one-tap screens (red flags, palpation,
// deep gluteal and SIJ tests) record every answer; a red flag answered "yes" alerts at
// once on its page and stays in view on every later page (and after a reload); "None"
// and the other options of a multi-select exclude each other; the section bar keeps the
// current section and Review in view. axe on every state shown.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkA11y, collectConsoleErrors, launchBrowser, newTablet, shot,
} from './harness.mjs';
import { addPatient, saved, sections, startExam } from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const checked = (page, id, value) => page.isChecked(`[id="q-${id}"] input[value="${value}"]`);

/** The current section's link and Review are inside the section bar's visible box. */
async function barKeepsInView(page, section) {
  const boxes = await page.evaluate((current) => {
    const box = (n) => { const r = n.getBoundingClientRect(); return { l: r.left, r: r.right }; };
    const nav = document.querySelector('nav.sections ol');
    const links = [...nav.querySelectorAll('a')];
    return { nav: box(nav), current: box(links.find((a) => a.dataset.section === current)),
      review: box(links[links.length - 1]) };
  }, section);
  for (const which of ['current', 'review']) {
    assert.ok(boxes[which].l >= boxes.nav.l - 1 && boxes[which].r <= boxes.nav.r + 1,
      `${which} link out of view on ${section}: ${JSON.stringify(boxes)}`);
  }
}

for (const orientation of ['landscape', 'portrait']) {
  describe(`one-tap screens and the red-flag alert in ${orientation}`, () => {
    test('screens, alert, exclusive options, section bar', { timeout: 180000 }, async () => {
      const context = await newTablet(browser, orientation);
      const page = await context.newPage();
      const errors = collectConsoleErrors(page);
      await addPatient(page, `OneTap${orientation}${Date.now()}`);
      const exam = await startExam(page);
      for (const section of await sections(page)) {
        await page.goto(`${exam}/pages/${section}`);
        await barKeepsInView(page, section);
      }

      // "None" and X-ray exclude each other, in both directions
      await page.goto(`${exam}/pages/history`);
      const imaging = '[id="q-history.imaging"]';
      await page.tap(`${imaging} label.opt:has-text("X-ray")`);
      await page.tap(`${imaging} label.opt:has-text("None")`);
      assert.ok(await checked(page, 'history.imaging', 'none'));
      assert.ok(!(await checked(page, 'history.imaging', 'xray')));
      await page.tap(`${imaging} label.opt:has-text("X-ray")`);
      assert.ok(!(await checked(page, 'history.imaging', 'none')));
      await saved(page);
      await checkA11y(page, `history (${orientation})`);

      // the red-flag screen in one tap: twelve "No", kept after a reload
      await page.goto(`${exam}/pages/red-flags`);
      await page.tap('button[data-screen]');
      const flags = await page.$$eval('#exam-form .q[data-link-id]', (n) => n.map((q) => q.dataset.linkId));
      assert.equal(flags.length, 12);
      for (const id of flags) assert.ok(await checked(page, id, 'false'), id);
      await saved(page);
      await page.reload();
      for (const id of flags) assert.ok(await checked(page, id, 'false'), `${id} after reload`);
      assert.equal(await page.locator('#red-flags').count(), 0);
      await page.goto(`${exam}/review`);
      assert.match(await page.textContent('main'), /Red flags: all negative, recorded in one step\./);
      await page.goto(`${exam}/pages/red-flags`);

      // a "yes" alerts at once (before any save), in the review banner's words
      await page.tap('[id="q-red-flags.saddle-numbness"] label.opt:has-text("Yes")');
      const banner = page.locator('#red-flag-alert #red-flags');
      assert.ok(await banner.isVisible(), 'the alert shows at once');
      assert.match(await banner.textContent(), /Red flags: emergency/);
      assert.match(await banner.textContent(), /Suspected cauda equina syndrome\. EMERGENCY: same-day hospital assessment/);
      assert.equal(await banner.getAttribute('role'), 'alert');
      await shot(page, `${orientation}-red-flag-alert`);
      await checkA11y(page, `red-flag alert (${orientation})`);
      await saved(page);
      // ... and stays in view on every later page, and after a reload
      for (const later of ['inspection', 'palpation', 'pain']) {
        await page.goto(`${exam}/pages/${later}`);
        await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
        const box = await page.locator('#red-flags').boundingBox();
        assert.ok(box && box.y >= 0 && box.y < page.viewportSize().height / 2,
          `the alert is in view at the foot of ${later}: ${JSON.stringify(box)}`);
      }
      await page.reload();
      assert.ok(await page.locator('#red-flags').isVisible());
      await page.goto(`${exam}/review`);
      assert.match(await page.textContent('#red-flags'), /Suspected cauda equina syndrome\. EMERGENCY/);
      await page.goto(`${exam}/pages/red-flags`);
      await page.tap('[id="q-red-flags.saddle-numbness"] label.opt:has-text("No")');
      await saved(page);
      assert.equal(await page.locator('#red-flags').count(), 0);

      // palpation: the sites tapped keep their finding, the rest become not tender
      await page.goto(`${exam}/pages/palpation`);
      const site = page.locator('[data-site="palpation.ischial-tuberosity.right"]');
      for (let n = 0; n < 3; n += 1) await site.tap();
      await page.tap('button[data-screen]');
      assert.equal(await site.getAttribute('data-value'), 'reproduces-familiar-pain');
      assert.ok(await checked(page, 'palpation.greater-trochanter.left', 'not-tender'));
      assert.equal(await page.locator('[data-site][data-value="not-tender"]').count(), 15);
      assert.match(await page.textContent('.bodymap'), /Ischial tuberosity/);
      await saved(page);
      await checkA11y(page, `palpation screen (${orientation})`);

      // the deep gluteal tests and the SIJ cluster in one tap each
      for (const [section, count] of [['deep-gluteal-tests', 6], ['sij-tests', 6]]) {
        await page.goto(`${exam}/pages/${section}`);
        await page.tap('button[data-screen]');
        assert.equal(await page.locator('#exam-form input[value="negative"]:checked').count(), count);
        await saved(page);
        await page.reload();
        assert.equal(await page.locator('#exam-form input[value="negative"]:checked').count(), count);
        await checkA11y(page, `${section} screen (${orientation})`);
      }

      // a "yes" given since, even taken back, ends the claim of a one-step screen
      await page.goto(`${exam}/review`);
      const review = await page.textContent('main');
      assert.doesNotMatch(review, /Red flags: all negative, recorded in one step/);
      assert.match(review, /Deep gluteal tests: all negative, recorded in one step\./);
      assert.doesNotMatch(review, /Palpation: all negative/); // a finding was recorded there
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
