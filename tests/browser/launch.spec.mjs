// From inside the EHR to the chart: an EHR launch (SMART App Launch 2, PKCE) against the
// test EHR (tests/support/ehr.py: an authorization server and a FHIR server, each its own
// process) that also signs the practitioner in (the EHR's id token: no password form),
// the exam prefilled from the EHR's Patient, every section by touch, sign-off confirmed by
// logging in again at the EHR,
// and the delivery worker (`python -m plugin deliver`, run beside the service with the
// user's launch token) putting the record in the EHR: the record page says so, and the
// EHR holds exactly one QuestionnaireResponse and one summary for the patient and
// encounter it launched with.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  baseUrl, checkA11y, collectConsoleErrors, launchBrowser, newTablet, shot,
} from './harness.mjs';
import { answerPageByTapping, saved, sections } from './exam-helpers.mjs';

const FHIR = process.env.EHR_FHIR_BASE;
const AUTH = process.env.EHR_AUTH_BASE;

async function call(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, `${url}: ${response.status}`);
  return response.json();
}

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('EHR launch -> prefilled exam -> sign -> delivered to the EHR', { timeout: 240000 }, async () => {
  assert.ok(FHIR && AUTH, 'EHR_FHIR_BASE and EHR_AUTH_BASE come from test_browser.py');
  const context = await newTablet(browser, 'landscape', { signedOut: true });
  const page = await context.newPage();
  const errors = collectConsoleErrors(page);

  // The EHR opens the app for its patient and encounter (its launch context).
  const { launch } = await call(`${AUTH}/_launch`, { patient: 'ehr-p-7', encounter: 'ehr-e-7' });
  await page.goto(`${baseUrl()}/launch?iss=${encodeURIComponent(FHIR)}&launch=${encodeURIComponent(launch)}`);
  await page.waitForURL(/\/exams\/[0-9a-f-]+\/pages\//);
  const exam = page.url().replace(/\/pages\/.*$/, '');
  assert.match(await page.textContent('header .who'), /Launchova, Lea/, 'the EHR patient, not re-typed');
  await checkA11y(page, 'first page after the launch');
  await shot(page, 'launch-first-page');

  // The age came from the EHR's birthDate through $populate.
  const order = await sections(page);
  await page.goto(`${exam}/pages/${order[0]}`);
  const age = await page.inputValue('[id="in-patient.age-years"]');
  const born = new Date('1971-06-15T00:00:00Z');
  const now = new Date();
  const expected = now.getUTCFullYear() - born.getUTCFullYear()
    - ((now.getUTCMonth() < born.getUTCMonth()
      || (now.getUTCMonth() === born.getUTCMonth() && now.getUTCDate() < born.getUTCDate())) ? 1 : 0);
  assert.equal(Number(age), expected);

  for (const section of order) {
    await page.goto(`${exam}/pages/${section}`);
    await answerPageByTapping(page, { 'history.onset': 'Sudden' });
    await saved(page);
  }
  await page.goto(`${exam}/review`);
  assert.equal(await page.locator('#errors').count(), 0);
  assert.equal(await page.locator('#password').count(), 0, 'signed in by the launch: no password');
  assert.match(await page.textContent('#sign-elsewhere-form'), /Dr Lena Launch/);
  await page.tap('button:has-text("Confirm at your EHR and sign")');
  await page.waitForURL(/\/record$/);
  assert.match(await page.textContent('#delivery'), /Waiting to send|Sending to the EHR|Sent to the EHR/);

  // The worker beside the service delivers it; the page tells the clinician.
  const deadline = Date.now() + 60000;
  let banner = '';
  while (Date.now() < deadline) {
    await page.reload();
    banner = await page.textContent('#delivery');
    if (/Sent to the EHR|Could not be sent/.test(banner)) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.match(banner, /Sent to the EHR/);
  await checkA11y(page, 'record after delivery');
  await shot(page, 'launch-record-delivered');

  // The EHR holds the record once, for its own patient and encounter, sent with the
  // user's token (the FHIR server checked it and its scopes).
  const state = await call(`${FHIR}/_state`);
  const made = (type) => state.resources.filter((r) => r.resourceType === type);
  const [qr, ...moreQr] = made('QuestionnaireResponse');
  assert.ok(qr, 'a QuestionnaireResponse reached the EHR');
  assert.deepEqual(moreQr, []);
  assert.equal(qr.subject.reference, 'Patient/ehr-p-7');
  assert.equal(qr.encounter.reference, 'Encounter/ehr-e-7');
  assert.equal(qr.author.reference, 'Practitioner/ehr-dr-9', 'signed as their own Practitioner');
  const docs = made('DocumentReference');
  assert.equal(docs.length, 1);
  assert.equal(docs[0].subject.reference, 'Patient/ehr-p-7');
  assert.ok(made('Observation').length > 10, 'the coded findings too');
  const posts = state.auth.filter((a) => a.method === 'POST' && a.ok);
  assert.ok(posts.length >= 1 && posts.every((a) => a.sub === 'posterior-thigh-exam'));
  assert.deepEqual(errors, []);
  await context.close();
});
