// How many touches a complete exam takes: a scripted exam of a typical proximal hamstring
// tendinopathy (tests/data/cases/triathlete-proximal-hamstring-tendinopathy.json), every
// question of today's content answered, from "Start exam" to "Sign and lock", counting
// every tap, click and drag (typing a number counts the tap into its field; the keys are
// not taps). Fails above 90 and prints the number (README "The tablet exam app").
// Before the one-tap screens, the scale and the stepper's start it took about 153.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clinician, launchBrowser, newTablet } from './harness.mjs';
import { addPatient, saved, tapCounter } from './exam-helpers.mjs';

const LIMIT = 90;
let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test(`a complete typical exam takes at most ${LIMIT} touches`, { timeout: 240000 }, async () => {
  const context = await newTablet(browser, 'landscape');
  const page = await context.newPage();
  await addPatient(page, `Taps${Date.now()}`);
  const counter = tapCounter(page);
  const { q, tap, option, exact, type, next, scale } = counter;

  counter.taps += 1;
  await Promise.all([page.waitForURL(/\/pages\//), page.tap('button:has-text("Start exam")')]);
  const exam = page.url().replace(/\/pages\/.*$/, '');
  // patient: the age is prefilled from the birth date
  assert.notEqual(await page.inputValue('[id="in-patient.age-years"]'), '');
  await next();
  // history
  await option('history.affected-side', 'Right');
  await option('history.onset', 'Gradual');
  await type('history.duration', '5');
  counter.taps += 1; await page.selectOption(`${q('history.duration')} select`, 'mo');
  await option('history.pain-location', 'Sit bone');
  await option('history.pain-location', 'Posterior thigh, upper third');
  await option('history.leg-vs-back', 'No back pain');
  await option('history.aggravating', 'Sitting');
  await option('history.aggravating', 'Fast or uphill running');
  await option('history.aggravating', 'Bending forward');
  await option('history.relieving', 'Standing or walking');
  await option('history.relieving', 'Rest');
  await exact('history.paraesthesia', 'none');
  await option('history.subjective-weakness', 'No');
  await tap(`${q('history.prior-hamstring-injuries')} button.step >> nth=1`);  // starts at 0
  await option('history.gait-hip-drop', 'Yes');
  await type('history.pt-weeks', '4');
  await exact('history.imaging', 'none');
  await exact('history.injections', 'none');
  await option('history.eswt', 'No');
  await next();
  await tap('button[data-screen]');  // red flags: all no
  await next();
  await tap('button[data-screen]');  // inspection: all no
  await next();
  // straight leg raise
  await scale('slr.left.onset-angle', 85);
  await scale('slr.right.onset-angle', 70);
  for (const side of ['left', 'right']) await option(`slr.${side}.response`, 'Hamstring stretch only');
  await option('slr.left.sensitising', 'Not done');
  await option('slr.right.sensitising', 'No change');
  for (const side of ['left', 'right']) await option(`slr.${side}.crossed-pain`, 'No');
  await next();
  for (const side of ['left', 'right']) {
    await option(`slump.${side}.response`, 'Stretch only');
    await option(`slump.${side}.neck-release`, 'No change');
    await tap(`${q(`slump.${side}.knee-extension-deficit`)} button.step >> nth=1`);  // 0°
  }
  await next();
  // palpation: the body map, then the rest not tender in one tap
  for (let n = 0; n < 3; n += 1) await tap('[data-site="palpation.ischial-tuberosity.right"]');
  for (let n = 0; n < 2; n += 1) await tap('[data-site="palpation.hamstring-proximal.right"]');
  await tap('button[data-screen]');
  for (const side of ['left', 'right']) await option(`palpation.defect.${side}`, 'No');
  await next();
  await option('sitting.effect', 'Aggravates');
  await type('sitting.tolerance-minutes', '20');
  await scale('sitting.pain-nrs', 5);
  await option('sitting.location', 'Sit bone');
  await option('sitting.hard-surface-worse', 'Yes');
  await next();
  await tap('button[data-normal-all]');
  await option('neuro.saddle-sensation', 'Normal');
  await next();
  for (const test of ['puranen-orava', 'bent-knee-stretch', 'modified-bent-knee-stretch']) {
    await option(`hamstring-tests.${test}.right`, 'Positive');
  }
  await option('hamstring-tests.resisted-knee-flexion.left', 'Strong');
  await exact('hamstring-tests.resisted-knee-flexion.right', 'painful');
  await tap('button[data-screen]');
  await next();
  await tap('button[data-screen]');  // deep gluteal tests
  await next();
  await tap('button[data-screen]');  // the SIJ cluster
  for (const side of ['left', 'right']) await option(`sij-tests.fortin.${side}`, 'No');
  await option('sij-tests.centralisation', 'No');
  await next();
  await option('hip-drop.trendelenburg.right', 'Positive');
  await tap('button[data-screen]');
  await type('hip-drop.trendelenburg-hold.left', '30');
  await type('hip-drop.trendelenburg-hold.right', '18');
  await option('hip-drop.single-leg-squat.left', 'Good');
  await option('hip-drop.single-leg-squat.right', 'Poor');
  await next();
  await scale('pain.current', 3);
  await scale('pain.worst-week', 6);
  await saved(page);
  await next();  // "Review and sign"

  // complete: nothing to correct, every section complete, and the right findings
  assert.equal(await page.locator('#errors').count(), 0);
  const incomplete = await page.$$eval('nav.sections a[data-section]:not(.complete)',
    (links) => links.map((a) => a.dataset.section));
  assert.deepEqual(incomplete, [], 'every question answered');
  const draft = await (await page.request.get(`${exam.replace(/\/exams\//, '/fhir/QuestionnaireResponse/')}`)).json();
  const answers = {};
  const walk = (items) => items.forEach((i) => { if (i.answer) answers[i.linkId] = i.answer; if (i.item) walk(i.item); });
  walk(draft.item);
  assert.deepEqual(answers['slr.right.onset-angle'], [{ valueInteger: 70 }]);
  assert.deepEqual(answers['slr.left.onset-angle'], [{ valueInteger: 85 }]);
  assert.equal(answers['palpation.ischial-tuberosity.right'][0].valueCoding.code, 'reproduces-familiar-pain');
  assert.equal(answers['hamstring-tests.puranen-orava.left'][0].valueCoding.code, 'negative');
  assert.match(await page.textContent('#differential li'), /Proximal hamstring tendinopathy/);

  counter.taps += 1; await page.locator('#password').tap();
  await page.fill('#password', clinician().password);
  counter.taps += 1;
  await Promise.all([page.waitForURL(/\/record$/), page.tap('button:has-text("Sign and lock")')]);
  console.log(`tap count: a complete typical exam took ${counter.taps} touches (${counter.typed} numbers typed, plus the password); limit ${LIMIT}`);
  assert.ok(counter.taps <= LIMIT, `${counter.taps} touches, more than ${LIMIT}`);
  await context.close();
});
