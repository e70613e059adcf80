// Drafts never get lost or overwritten: autosave survives a reload, a dropped network
// and a closed tab; a second tab's stale save is refused with a message; a wrong value
// shows its message inline and blocks signing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkA11y, collectConsoleErrors, launchBrowser, newTablet, shot } from './harness.mjs';
import { addPatient, saved, startExam } from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const ANGLE = '[id="in-slr.left.onset-angle"]';
const plus = (page) => page.locator('[id="q-slr.left.onset-angle"] button.step').last();

async function freshExam(orientation = 'landscape') {
  const context = await newTablet(browser, orientation);
  const page = await context.newPage();
  await addPatient(page, `Draft${Date.now()}`);
  const exam = await startExam(page);
  await page.goto(`${exam}/pages/slr`);
  return { context, page, exam };
}

test('autosave, then reload, restores the answers', async () => {
  const { context, page } = await freshExam();
  const errors = collectConsoleErrors(page);
  await plus(page).tap();  // an empty angle starts at the scale's middle, 45°
  await plus(page).tap();
  await page.locator('[id="q-slr.right.response"] label.opt', { hasText: 'Familiar leg pain below the knee' }).tap();
  await saved(page);
  await page.reload();
  assert.equal(await page.inputValue(ANGLE), '50');
  assert.ok(await page.isChecked('[id="q-slr.right.response"] input[value="leg-pain-below-knee"]'));
  // a second tap on a chosen option clears it, and that is saved too
  await page.locator('[id="q-slr.right.response"] label.opt', { hasText: 'Familiar leg pain below the knee' }).tap();
  await saved(page);
  await page.reload();
  assert.equal(await page.locator('[id="q-slr.right.response"] input:checked').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test('offline changes are kept on the tablet and sent when the network returns', async () => {
  const { context, page, exam } = await freshExam('portrait');
  await plus(page).tap();
  await saved(page);
  await context.setOffline(true);
  await plus(page).tap();
  await page.waitForFunction(() => /kept on this tablet/.test(document.getElementById('save-status').textContent));
  await shot(page, 'drafts-offline');
  // the tablet "sleeps": the tab is gone before the network is back
  await page.close();
  await context.setOffline(false);
  const again = await context.newPage();
  await again.goto(`${exam}/pages/slr`);
  await saved(again);
  assert.equal(await again.inputValue(ANGLE), '50');
  await again.reload();
  assert.equal(await again.inputValue(ANGLE), '50', 'the resent change reached the server');
  await context.close();
});

test('a second tab cannot silently overwrite the first', async () => {
  const { context, page: first, exam } = await freshExam();
  const second = await context.newPage();
  await second.goto(`${exam}/pages/slr`);
  await plus(first).tap();
  await saved(first);
  await plus(second).tap();
  await plus(second).tap();
  const banner = second.locator('#conflict');
  await banner.waitFor({ state: 'visible' });
  assert.match(await banner.textContent(), /changed on another tablet or tab/);
  assert.equal(await banner.getAttribute('role'), 'alert');
  assert.ok(await second.$eval('#exam-form', (f) => f.inert), 'no more edits until reload');
  await shot(second, 'drafts-conflict');
  await checkA11y(second, 'conflict message');
  await second.locator('#conflict button:has-text("Reload")').tap();
  await second.waitForLoadState('load');
  assert.equal(await second.inputValue(ANGLE), '45', "the first tab's save stands");
  await context.close();
});

test('a wrong value gets an inline message and blocks signing', async () => {
  const { context, page, exam } = await freshExam();
  await page.locator(ANGLE).tap();
  await page.locator(ANGLE).fill('400');
  await page.locator('[id="q-slr.left.response"] label.opt').first().tap();
  await saved(page);
  const message = page.locator('[id="err-slr.left.onset-angle"]');
  await message.waitFor({ state: 'visible' });
  assert.match(await message.textContent(), /out of range/);
  assert.equal(await page.getAttribute(ANGLE, 'aria-invalid'), 'true');
  await shot(page, 'drafts-validation');
  await checkA11y(page, 'validation message');
  await page.reload();
  assert.equal(await page.inputValue(ANGLE), '400', 'what was typed is kept');
  await page.goto(`${exam}/review`);
  assert.match(await page.textContent('#errors'), /out of range/);
  assert.ok(await page.isDisabled('button:has-text("Sign and lock")'));
  await checkA11y(page, 'review with errors');
  await page.tap('#errors a');
  await page.waitForURL(/\/pages\/slr#q-slr\.left\.onset-angle$/);
  await context.close();
});
