// Printing the signed record from the browser, at an iPad size: the print stylesheet
// (exam.css @media print; the CSP allows no inline style) hides every button, form and
// the navigation, and keeps the record itself: who, the signature, the findings, the
// decision support and the revisions.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clinician, collectConsoleErrors, launchBrowser, newTablet, shot } from './harness.mjs';
import { addPatient, answerPageByTapping, saved, startExam } from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// the document buttons, the amend form, sign-out, the skip link, "back to the patient's exams"
const CHROME = ['#documents', '#amend-form', 'form.signout', 'a.skip', 'main a[href*="/patients/"]'];
const RECORD = ['#signed', '#findings', '#differential', '#revisions', 'header.bar .who',
  '#abnormal-key'];

async function shown(page, selectors) {
  const result = {};
  for (const s of selectors) {
    const found = page.locator(s);
    result[s] = (await found.count()) > 0 && await found.first().isVisible();
  }
  return result;
}

test('the record prints without buttons or navigation (iPad portrait)', { timeout: 120000 }, async () => {
  const context = await newTablet(browser, 'portrait');
  const page = await context.newPage();
  const errors = collectConsoleErrors(page);
  await addPatient(page, `Print${Date.now()}`);
  const exam = await startExam(page);
  await page.goto(`${exam}/pages/slr`);
  await answerPageByTapping(page, { 'slr.left.onset-angle': 9 });
  await saved(page);
  await page.goto(`${exam}/review`);
  await page.fill('#password', clinician().password);
  await page.tap('button:has-text("Sign and lock")');
  await page.waitForURL(/\/record$/);

  // on screen: the buttons and navigation are there (so hiding them is the stylesheet's doing)
  const screen = await shown(page, [...CHROME.filter((s) => s !== 'a.skip'), ...RECORD]);
  assert.deepEqual(Object.entries(screen).filter(([, v]) => !v), [], 'missing on screen');

  await page.emulateMedia({ media: 'print' });
  const printed = await shown(page, [...CHROME, 'button', ...RECORD]);
  for (const s of [...CHROME, 'button']) assert.equal(printed[s], false, `${s} prints`);
  for (const s of RECORD) assert.equal(printed[s], true, `${s} does not print`);
  const buttons = await page.$$eval('button, a.button, form', (nodes) => nodes
    .filter((n) => n.getClientRects().length > 0).map((n) => n.outerHTML.slice(0, 80)));
  assert.deepEqual(buttons, [], 'visible buttons or forms in print');
  // the evidence of every suggestion is laid open for print (exam.js, beforeprint)
  await page.evaluate(() => window.dispatchEvent(new Event('beforeprint')));
  const closed = await page.$$eval('.differential details', (d) => d.filter((x) => !x.open).length);
  assert.equal(closed, 0);
  await shot(page, 'portrait-record-print');
  assert.deepEqual(errors, []);
  await context.close();
});
