// A whole exam by touch at both iPad sizes: every section answered by tapping only,
// screenshots of each section, axe on every page, then review, sign, the read-only
// record, an amendment with a reason, and the revisions that keep revision 1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkA11y, clinician, collectConsoleErrors, launchBrowser, newTablet, shot,
} from './harness.mjs';
import {
  addPatient, answerPageByTapping, saved, sections, shownAnswers, smallTargets, startExam,
} from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

for (const orientation of ['landscape', 'portrait']) {
  describe(`a full exam on a tablet in ${orientation}`, () => {
    test('tap through every section, sign, view read-only, amend', { timeout: 240000 }, async () => {
      const context = await newTablet(browser, orientation);
      const page = await context.newPage();
      const errors = collectConsoleErrors(page);

      await addPatient(page, `Flow${orientation}${Date.now()}`);
      assert.deepEqual(await smallTargets(page), [], 'touch targets under 44 px: patient');
      await checkA11y(page, 'patient page');
      const exam = await startExam(page);
      const order = await sections(page);
      assert.ok(order.length >= 10, `expected the exam's sections, got ${order}`);

      const shown = {};
      for (const section of order) {
        await page.goto(`${exam}/pages/${section}`);
        if (section === 'palpation') {
          // the body map: one tap = not tender, two = tender, three = familiar pain
          const site = page.locator('[data-site="palpation.ischial-tuberosity.right"]');
          for (let n = 0; n < 3; n += 1) await site.tap();
          assert.equal(await site.getAttribute('data-value'), 'reproduces-familiar-pain');
          assert.ok(await page.isChecked('[id="q-palpation.ischial-tuberosity.right"] input[value="reproduces-familiar-pain"]'));
        }
        if (section === 'neuro') {
          await page.tap('button[data-normal-all]');
          assert.equal(await page.inputValue('[id="in-neuro.power.l5.right"]'), '5');
          assert.ok(await page.isChecked('[id="q-neuro.reflex.ankle.left"] input[value="normal"]'));
        }
        await answerPageByTapping(page, { 'history.onset': 'Sudden', 'slr.left.onset-angle': 9 });
        await saved(page);
        shown[section] = await shownAnswers(page);
        assert.deepEqual(await smallTargets(page), [], `touch targets under 44 px: ${section}`);
        await shot(page, `${orientation}-section-${section}`);
        await checkA11y(page, `section ${section} (${orientation})`);
      }

      // Every section's progress is complete in the navigation.
      const incomplete = await page.$$eval('nav.sections a[data-section]:not(.complete)',
        (links) => links.map((a) => a.dataset.section));
      assert.deepEqual(incomplete, []);

      // Nothing lost: reload each page and compare with what was on screen.
      for (const section of order) {
        await page.goto(`${exam}/pages/${section}`);
        assert.deepEqual(await shownAnswers(page), shown[section], `after reload: ${section}`);
      }

      await page.goto(`${exam}/review`);
      await shot(page, `${orientation}-review`);
      await checkA11y(page, `review (${orientation})`);
      assert.equal(await page.locator('#errors').count(), 0);
      assert.match(await page.textContent('.disclaimer'), /suggestion/i);
      assert.ok(await page.locator('#findings').isVisible());
      await page.fill('#password', clinician().password);
      await page.tap('button:has-text("Sign and lock")');
      await page.waitForURL(/\/record$/);
      assert.match(await page.textContent('#signed'), /Revision 1 \(completed\), signed by Dr Ann Lee/);
      assert.equal(await page.locator('#exam-form').count(), 0, 'the record is read-only');
      assert.deepEqual(await smallTargets(page), [], 'touch targets under 44 px: record');
      await shot(page, `${orientation}-record`);
      await checkA11y(page, `record (${orientation})`);

      // A signed exam's pages send the tablet to the record, not to an editable form.
      await page.goto(`${exam}/pages/slr`);
      assert.match(page.url(), /\/record$/);

      await page.fill('#reason', 'Left SLR angle misread');
      await page.tap('button:has-text("Start amendment")');
      await page.waitForURL(/\/pages\//);
      await page.goto(`${exam}/pages/slr`);
      const before = Number(await page.inputValue('[id="in-slr.left.onset-angle"]'));
      await page.locator('[id="q-slr.left.onset-angle"] button.step').last().tap();
      await saved(page);
      await page.goto(`${exam}/review`);
      await page.fill('#password', clinician().password);
      await page.tap('button:has-text("Sign and lock")');
      await page.waitForURL(/\/record$/);
      assert.match(await page.textContent('#signed'), /Revision 2 \(amended\).*Left SLR angle misread/s);
      assert.equal(await page.locator('#revisions li').count(), 2);
      assert.match(await page.textContent('#findings'), new RegExp(`${before + 5}°`));
      await page.tap('#revisions a:has-text("Revision 1")');
      await page.waitForURL(/\/revisions\/1$/);
      assert.match(await page.textContent('#findings'), new RegExp(`${before}°`));
      await checkA11y(page, `revision 1 (${orientation})`);

      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
