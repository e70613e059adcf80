// Standalone patients: the form shows field messages, the list finds a patient.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { baseUrl, checkA11y, launchBrowser, newTablet, shot } from './harness.mjs';
import { addPatient } from './exam-helpers.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('a patient form with mistakes says what to fix; a saved patient is found', async () => {
  const context = await newTablet(browser, 'portrait');
  const page = await context.newPage();
  await page.goto(`${baseUrl()}/patients`);
  await checkA11y(page, 'patients');
  await page.fill('#p-birth_date', '2999-01-01');
  await page.tap('button:has-text("Add patient")');
  assert.match(await page.textContent('#p-family-err'), /Required/);
  assert.match(await page.textContent('#p-birth_date-err'), /in the future/);
  await shot(page, 'patients-form-errors');
  await checkA11y(page, 'patients with errors');
  const family = await addPatient(page, `Okafor${Date.now()}`);
  await page.goto(`${baseUrl()}/patients?q=${family.toLowerCase()}`);
  assert.equal(await page.locator('.cards li').count(), 1);
  assert.match(await page.textContent('.cards'), new RegExp(family));
  await context.close();
});
