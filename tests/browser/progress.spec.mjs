// Progress across visits at both iPad sizes: a patient with two signed visits; the
// patient page lists both in words and links to the progress page, whose charts (inline
// SVG, no script) are visible beside their data tables and change sentences; axe clean.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { baseUrl, checkA11y, clinician, collectConsoleErrors, launchBrowser, newTablet, shot }
  from './harness.mjs';
import { addPatient, answerPageByTapping, saved, startExam } from './exam-helpers.mjs';

let browser;
let patientUrl;
before(async () => {
  browser = await launchBrowser();
  // two signed visits of one patient, through the tablet as a clinician records them
  const context = await newTablet(browser, 'landscape');
  const page = await context.newPage();
  await addPatient(page, `Progress${Date.now()}`);
  patientUrl = page.url();
  for (const taps of [8, 12]) {
    await page.goto(patientUrl);
    const exam = await startExam(page);
    await page.goto(`${exam}/pages/slr`);
    await answerPageByTapping(page, { 'slr.left.onset-angle': taps });
    await saved(page);
    await page.goto(`${exam}/review`);
    await page.fill('#password', clinician().password);
    await page.tap('button:has-text("Sign and lock")');
    await page.waitForURL(/\/record$/);
  }
  await context.close();
});
after(async () => { await browser?.close(); });

for (const orientation of ['landscape', 'portrait']) {
  test(`the progress page charts two visits (iPad ${orientation})`, { timeout: 120000 }, async () => {
    const context = await newTablet(browser, orientation);
    const page = await context.newPage();
    const errors = collectConsoleErrors(page);
    await page.goto(patientUrl);
    const visits = await page.$$eval('.visit-kind', (nodes) => nodes.map((n) => n.textContent));
    assert.deepEqual(visits, ['Initial exam', 'Initial exam']);
    await checkA11y(page, `patient page (${orientation})`);
    await page.tap('#progress-link a');
    await page.waitForURL(/\/progress$/);
    assert.equal(page.url(), `${baseUrl()}${new URL(patientUrl).pathname}/progress`);
    assert.match(await page.textContent('#progress-span'), /^2 signed visits/);

    const slr = page.locator('section.progress-chart').first();
    assert.match(await slr.locator('h2').textContent(), /Straight leg raise/);
    assert.ok(await slr.locator('svg[role="img"]').isVisible(), 'the chart is visible');
    const box = await slr.locator('svg[role="img"]').boundingBox();
    assert.ok(box.width > 300 && box.height > 100, `chart drawn at ${box.width}x${box.height}`);
    assert.ok(box.x + box.width <= (orientation === 'portrait' ? 768 : 1024), 'fits the screen');
    // the table says what the picture shows: two visits, the left side's angles
    const rows = await slr.locator('table.chart-data tbody tr').count();
    assert.equal(rows, 2);
    assert.match(await slr.locator('.changes').textContent(), /left \+\d+ since/);
    // the chart's accessible name is its title
    const label = await slr.locator('svg[role="img"]').getAttribute('aria-labelledby');
    assert.match(label, /-title .*-desc$/);

    assert.equal(await page.locator('script:not([src])').count(), 0, 'no inline script');
    await checkA11y(page, `progress (${orientation})`);
    await shot(page, `${orientation}-progress`);
    assert.deepEqual(errors, []);
    await context.close();
  });
}
