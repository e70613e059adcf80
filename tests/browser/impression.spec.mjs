// The clinician's impression and plan on the review, by touch at both iPad sizes: choose
// a working diagnosis, drop a suggested referral (signing then asks why, beside the
// field), give the reason and sign at once (the autosave lands first), and the record
// shows the clinician's impression apart from the suggestions. axe on every state.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkA11y, clinician, collectConsoleErrors, launchBrowser, newTablet, shot,
} from './harness.mjs';
import { addPatient, saved, startExam } from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function impressionSaved(page) {
  try {
    await page.waitForFunction(
      () => /^Saved\.$/.test(document.getElementById('impression-status').textContent),
      null, { timeout: 10000 });
  } catch (error) {
    throw new Error(`not saved: "${await page.textContent('#impression-status')}"`);
  }
}

/** The panel's controls smaller than a 44 x 44 CSS px touch target. */
async function smallPanelTargets(page) {
  return page.$$eval('#impression-form .choice, #impression-form select, '
    + '#impression-form input[type=text], #impression-form textarea, #impression-form button',
  (nodes) => nodes.map((n) => ({ n, r: n.getBoundingClientRect() }))
    .filter(({ r }) => r.width < 44 || r.height < 44)
    .map(({ n, r }) => `${n.tagName.toLowerCase()}#${n.id} ${Math.round(r.width)}x${Math.round(r.height)}`));
}

for (const orientation of ['landscape', 'portrait']) {
  describe(`the impression and plan on a tablet in ${orientation}`, () => {
    test('decide, be asked for a reason, sign, read it on the record', { timeout: 120000 }, async () => {
      const context = await newTablet(browser, orientation);
      const page = await context.newPage();
      const errors = collectConsoleErrors(page);
      await addPatient(page, `Plan${orientation}${Date.now()}`);
      const exam = await startExam(page);
      await page.goto(`${exam}/pages/slr`);
      await page.locator('[id="q-slr.left.response"] label.opt',
        { hasText: 'Familiar leg pain below the knee' }).tap();
      const plus = page.locator('[id="q-slr.left.onset-angle"] button.step').last();
      for (let n = 0; n < 4; n += 1) await plus.tap();
      await saved(page);

      await page.goto(`${exam}/review`);
      const panel = page.locator('#impression');
      await panel.scrollIntoViewIfNeeded();
      assert.deepEqual(await smallPanelTargets(page), []);
      await checkA11y(page, `review with the panel (${orientation})`);
      await page.selectOption('#diagnosis-condition', 'lumbar-radiculopathy');
      await impressionSaved(page);
      await panel.locator('label.choice', { hasText: 'Confirmed' }).tap();
      await impressionSaved(page);
      const physio = page.locator('#referral-physiotherapy');
      await physio.locator('label.choice', { hasText: "Don't make it" }).tap();
      await impressionSaved(page);
      await shot(page, `${orientation}-impression`);

      // signing without the reason: refused, and the message is beside the field
      await page.fill('#password', clinician().password);
      await page.tap('button:has-text("Sign and lock")');
      await page.waitForSelector('#referral-physiotherapy-reason-err');
      assert.match(await page.textContent('#message'), /impression and plan/);
      assert.equal(await page.inputValue('#diagnosis-condition'), 'lumbar-radiculopathy');
      await checkA11y(page, `review asking for a reason (${orientation})`);
      await shot(page, `${orientation}-impression-reason`);

      // the reason, then sign at once: the signature waits for the autosave
      await page.fill('#referral-physiotherapy-reason', 'Already sees a physiotherapist');
      await page.fill('#password', clinician().password);  // blur: the change is saved
      await page.tap('button:has-text("Sign and lock")');
      await page.waitForURL(/\/record$/);
      const decided = await page.textContent('#decided');
      assert.match(decided, /Clinician's impression/);
      assert.match(decided, /Lumbar radiculopathy \(disc-related sciatica\) \(confirmed; the first suggestion\)/);
      assert.match(decided, /Physiotherapy: not made\. Reason: Already sees a physiotherapist/);
      assert.doesNotMatch(decided, /lumbar-radiculopathy|physiotherapy:/);
      assert.ok(await page.locator('#differential').isVisible(), 'the suggestions stay, apart');
      await checkA11y(page, `record with the impression (${orientation})`);
      await shot(page, `${orientation}-impression-record`);
      // the one refused signing is a 422 page (the field message), nothing else
      assert.deepEqual(errors.filter((e) => !/status of 422 .*\/sign:/.test(e)), []);
      assert.equal(errors.length, 1);
      await context.close();
    });
  });
}
