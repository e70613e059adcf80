// LHC-Forms (npm `lforms`) as the reference SDC renderer: score responses with it.
//
// Why: the product scores outcome measures from the Questionnaire's own itemWeight and
// calculatedExpression (plugin/core/scoring.py). Another SDC implementation given the same
// Questionnaire and answers must compute the same scores, or the scoring is not "as data".
// lforms only runs in a browser (shared/fhir.md §6.1), so this drives Debian's Chromium.
//
// stdin: {"questionnaire": Questionnaire, "responses": [QuestionnaireResponse, ...]}
// stdout: [QuestionnaireResponse as LHC-Forms exports it, ...] (same order)

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchBrowser } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(HERE, 'node_modules', 'lforms', 'dist', 'lforms');
// At the end of <body> (in <head> they fail, fhir.md §6.1), in a page declared UTF-8: the
// FHIRPath parser inside lformsFHIR holds its grammar in a non-ASCII string literal.
const SCRIPTS = ['webcomponent/assets/lib/zone.min.js', 'webcomponent/runtime.js',
  'webcomponent/polyfills.js', 'webcomponent/main.js', 'fhir/R4/lformsFHIR.min.js'];

const input = JSON.parse(readFileSync(0, 'utf8'));
const dir = mkdtempSync(path.join(os.tmpdir(), 'lforms-'));
const page_html = path.join(dir, 'index.html');
writeFileSync(page_html, '<!doctype html><html><head><meta charset="utf-8"></head><body><div id="form"></div>'
  + SCRIPTS.map((s) => `<script src="${pathToFileURL(path.join(DIST, s))}"></script>`).join('')
  + '</body></html>');

const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pathToFileURL(page_html).href);
  await page.waitForFunction(() => window.LForms && window.LForms.Util
    && window.LForms.FHIR && window.LForms.FHIR.R4, null, { timeout: 60000 })
    .catch((e) => { throw new Error(`lforms did not load: ${errors.join('; ')} ${e}`); });
  const out = await page.evaluate(async ({ questionnaire, responses }) => {
    const results = [];
    for (const qr of responses) {
      LForms.Util.removeFormsFromPage('form');
      try {
        await LForms.Util.addFormToPage(structuredClone(questionnaire), 'form',
          { questionnaireResponse: structuredClone(qr), fhirVersion: 'R4' });
      } catch (e) { // lforms rejects with a list of messages
        throw new Error(`lforms refused the form: ${JSON.stringify(e)}`);
      }
      // The calculatedExpressions have run when addFormToPage resolves (a 0 ms wait
      // passes too); 50 ms is slack for a loaded machine.
      await new Promise((resolve) => setTimeout(resolve, 50));
      results.push(LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4',
        document.getElementById('form')));
    }
    return results;
  }, input);
  if (errors.length) {
    process.stderr.write(`page errors: ${errors.join('\n')}\n`);
  }
  process.stdout.write(JSON.stringify(out));
} finally {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
}
