// Sign-in on the tablet: the login page meets the tablet and axe bar, a wrong password
// gets one message, and when a session ends while an exam page is open, the change
// typed after it stays on the tablet, the page asks to sign in again and sends it then.
// Runs against a service whose sign-ins end after a few idle seconds (IDLE_SECONDS).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  baseUrl, checkA11y, clinician, collectConsoleErrors, launchBrowser, newTablet, shot,
} from './harness.mjs';
import { addPatient, saved, startExam } from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const ANGLE = '[id="in-slr.left.onset-angle"]';
const plus = (page) => page.locator('[id="q-slr.left.onset-angle"] button.step').last();

for (const orientation of ['landscape', 'portrait']) {
  test(`the login page on a ${orientation} tablet; a wrong password is refused`, async () => {
    const context = await newTablet(browser, orientation, { signedOut: true });
    const page = await context.newPage();
    const errors = collectConsoleErrors(page);
    await page.goto(`${baseUrl()}/patients`);
    assert.match(page.url(), /\/login\?next=/, 'a page without a session asks to sign in');
    await checkA11y(page, `login ${orientation}`);
    const box = await page.locator('#login button[type=submit]').boundingBox();
    assert.ok(box.height >= 44 && box.width >= 44, 'touch target at least 44 px');
    await page.fill('#username', clinician().username);
    await page.fill('#password', 'not the right password at all');
    await page.tap('#login button[type=submit]');
    assert.match(await page.textContent('#login-error'), /username or password is not right/);
    await checkA11y(page, `login refused ${orientation}`);
    await shot(page, `login-${orientation}`);
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('a change made after the session ended is kept, and sent after signing in again', async () => {
  const idle = Number(process.env.IDLE_SECONDS);
  assert.ok(idle > 0 && idle < 30, 'IDLE_SECONDS comes from test_browser.py');
  const context = await newTablet(browser, 'landscape');
  const page = await context.newPage();
  const errors = collectConsoleErrors(page);
  await addPatient(page, `Session${Date.now()}`);
  const exam = await startExam(page);
  await page.goto(`${exam}/pages/slr`);
  await plus(page).tap();  // an empty angle starts at 45°
  await saved(page);
  // the tablet is left alone longer than the idle timeout: the session ends
  await page.waitForTimeout((idle + 1.5) * 1000);
  await plus(page).tap();
  await page.waitForFunction(() => /sign in again/i.test(document.getElementById('save-status').textContent));
  assert.equal(await page.inputValue(ANGLE), '50', 'the change is still on the page');
  await checkA11y(page, 'session ended on an exam page');
  await shot(page, 'session-ended');
  await Promise.all([page.waitForURL(/\/login\?/), page.tap('a:has-text("Sign in again")')]);
  assert.match(await page.textContent('main'), /answers not yet sent are kept on this tablet/);
  await page.fill('#username', clinician().username);
  await page.fill('#password', clinician().password);
  await Promise.all([page.waitForURL(/\/pages\/slr$/), page.tap('#login button[type=submit]')]);
  await saved(page);  // the kept change was sent
  await page.reload();
  assert.equal(await page.inputValue(ANGLE), '50', 'the change reached the server');
  assert.deepEqual(errors.filter((e) => !/401|UNAUTHORIZED/.test(e)), []);
  await context.close();
});
