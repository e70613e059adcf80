// Steps the exam specs share: create a patient, start an exam, answer a page by touch,
// read back what a page shows. Everything goes through the UI as a clinician would.
import assert from 'node:assert/strict';
import { baseUrl } from './harness.mjs';

/** Add a patient through the form (typing is expected here) and open their page. */
export async function addPatient(page, family = `Test${Date.now()}`) {
  await page.goto(`${baseUrl()}/patients`);
  await page.fill('#p-family', family);
  await page.fill('#p-given', 'Ana');
  await page.fill('#p-birth_date', '1986-03-14');
  await page.fill('#p-identifier', `MRN-${family}`);
  await page.tap('button:has-text("Add patient")');
  await page.waitForURL(/\/patients\/[0-9a-f-]+$/);
  return family;
}

/** Start an exam for the patient whose page is open; returns the exam's base URL. */
export async function startExam(page) {
  await page.tap('button:has-text("Start exam")');
  await page.waitForURL(/\/exams\/[0-9a-f-]+\/pages\//);
  return page.url().replace(/\/pages\/.*$/, '');
}

/** The link ids of the visible (enabled) questions of the page, in order. */
export async function visibleQuestions(page) {
  return page.$$eval('#exam-form .q[data-link-id]', (nodes) => nodes
    .filter((q) => !q.closest('[data-disabled]'))
    .map((q) => ({ id: q.dataset.linkId, type: q.dataset.type, repeats: q.hasAttribute('data-repeats') })));
}

/** Whether a question already has an answer on screen. */
async function answered(page, q) {
  return page.$eval(`[id="q-${q.id}"]`, (node) => {
    if (node.querySelector('input:checked')) return true;
    const text = node.querySelector('input[type=text], input[type=date], textarea');
    return Boolean(text && text.value.trim());
  });
}

/** Answer every visible question of the page by tapping only: the first option of a
 * choice (which opens its follow-up questions where there are any), "No" for yes/no,
 * the + stepper for numbers; `choices` overrides by link id (an option's label text).
 * Repeats until no visible question is unanswered (follow-ups appear as it goes). */
export async function answerPageByTapping(page, choices = {}) {
  for (let round = 0; round < 5; round += 1) {
    let tapped = 0;
    for (const q of await visibleQuestions(page)) {
      if (await answered(page, q)) continue;
      const node = page.locator(`[id="q-${q.id}"]`);
      if (q.type === 'choice' || q.type === 'boolean') {
        const label = choices[q.id] ?? (q.type === 'boolean' ? 'No' : null);
        const option = label ? node.locator('label.opt', { hasText: label }).first()
          : node.locator('label.opt').first();
        await option.tap();
      } else if (q.type === 'integer' || q.type === 'quantity' || q.type === 'decimal') {
        const plus = node.locator('button.step').last();
        for (let n = 0; n < (choices[q.id] ?? 1); n += 1) await plus.tap();
      } else {
        throw new Error(`no tap strategy for ${q.id} (${q.type})`);
      }
      tapped += 1;
    }
    if (tapped === 0) return;
  }
  const left = [];
  for (const q of await visibleQuestions(page)) if (!(await answered(page, q))) left.push(q.id);
  assert.deepEqual(left, [], 'questions left unanswered after tapping');
}

/** Every answer the page shows, keyed by link id (what reload must restore). */
export async function shownAnswers(page) {
  return page.$$eval('#exam-form .q[data-link-id]', (nodes) => Object.fromEntries(nodes.map((q) => {
    const checked = [...q.querySelectorAll('input:checked')].map((i) => i.value);
    const text = q.querySelector('input[type=text], input[type=date], textarea');
    const unit = q.querySelector('select');
    return [q.dataset.linkId, { checked, text: text ? text.value : null, unit: unit ? unit.value : null }];
  })));
}

/** Wait until the autosave has reached the server. */
export async function saved(page) {
  await page.waitForFunction(() => {
    const s = document.getElementById('save-status');
    return s && /All changes saved/.test(s.textContent);
  }, null, { timeout: 10000 });
}

/** The section pages in navigation order (link ids), read from the section bar. */
export async function sections(page) {
  return page.$$eval('nav.sections a[data-section]', (links) => links.map((a) => a.dataset.section));
}

/** Controls smaller than a 44 x 44 CSS px touch target (WCAG 2.5.5), described. */
export async function smallTargets(page) {
  return page.$$eval(
    '#exam-form button, #exam-form .opt span, #exam-form input[type=text], #exam-form select, '
    + '#exam-form textarea, #exam-form input[type=range], #exam-form [data-site], '
    + 'nav.sections a, .pager a, #sign-form button, #amend-form button, #history a, '
    + '.tap-link a, button[data-screen]',
    (nodes) => nodes.filter((n) => n.getClientRects().length > 0 && !n.closest('[hidden]'))
      .map((n) => ({ n, r: n.getBoundingClientRect() }))
      .filter(({ r }) => r.width < 44 || r.height < 44)
      .map(({ n, r }) => `${n.tagName.toLowerCase()}${n.id ? '#' + n.id : ''} `
        + `"${(n.textContent || n.getAttribute('aria-label') || '').trim().slice(0, 30)}" `
        + `${Math.round(r.width)}x${Math.round(r.height)}`));
}

/** Touch helpers that count every tap, click and drag (typing a number counts the tap
 * into its field; the keys are not taps): the tap-count specs' one way of counting.
 * ``taps`` and ``typed`` are read after the script; a spec adds 1 to ``taps`` itself for
 * a touch made another way. */
export function tapCounter(page) {
  const counter = { taps: 0, typed: 0 };
  const q = (id) => `[id="q-${id}"]`;
  const tap = async (selector) => { counter.taps += 1; await page.locator(selector).first().tap(); };
  Object.assign(counter, {
    q,
    tap,
    option: (id, label) => tap(`${q(id)} label.opt:has-text("${label}")`),
    exact: (id, code) => tap(`${q(id)} label.opt:has(input[value="${code}"])`),
    type: async (id, text) => {
      counter.taps += 1; counter.typed += 1; await page.fill(`[id="in-${id}"]`, text);
    },
    /** The pager's "next" (or the primary link at the end of a section). */
    next: async () => {
      counter.taps += 1;
      const from = page.url();
      await Promise.all([page.waitForURL((url) => url.href !== from),
        page.locator('.pager a[rel=next], .pager a.primary').last().tap()]);
      await page.waitForLoadState('load');
    },
    /** One tap on the scale where ``value`` lies, then the stepper for what the finger
     * missed (each step a tap): what a clinician does. */
    scale: async (id, value) => {
      const slider = page.locator(`${q(id)} input[type=range]`);
      const [min, max] = [Number(await slider.getAttribute('min')), Number(await slider.getAttribute('max'))];
      const box = await slider.boundingBox();
      counter.taps += 1;
      await page.touchscreen.tap(box.x + 8 + ((value - min) / (max - min)) * (box.width - 16),
        box.y + box.height / 2);
      for (let n = 0; n < 20; n += 1) {
        const now = Number(await page.inputValue(`[id="in-${id}"]`));
        if (now === value) return;
        await tap(`${q(id)} button.step >> nth=${now < value ? 1 : 0}`);
      }
      assert.fail(`${id} never reached ${value}`);
    },
  });
  return counter;
}
