/* The tablet exam page: live enableWhen, touch widgets, and an autosave that never loses
 * a change. Every change is written to localStorage first and then PUT to the server
 * with If-Match; a failed send (sleep, Wi-Fi drop) is retried and resent on the next
 * load, and a refused one (the exam changed elsewhere) is shown, never overwritten.
 * No framework, no build step: the server renders the form from the Questionnaire. */
(function () {
  "use strict";
  /* Printing the review or the record: every differential's evidence laid open (a
   * closed <details> would print as its one-line summary). */
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll(".differential details").forEach(function (d) { d.open = true; });
  });
})();

(function () {
  "use strict";

  /* The section bar scrolls sideways: keep the current section in view (Review stays
   * pinned at its end by the style sheet), on every page including the review. */
  var bar = document.querySelector("nav.sections ol");
  var here = bar && bar.querySelector("a[aria-current]");
  if (bar && here) {
    var item = here.parentNode;
    bar.scrollLeft = Math.max(0, item.offsetLeft - (bar.clientWidth - item.offsetWidth) / 2);
  }

  var dataNode = document.getElementById("exam-data");
  var form = document.getElementById("exam-form");
  if (!dataNode || !form) { return; }
  var data = JSON.parse(dataNode.textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var statusNode = document.getElementById("save-status");
  var conflictNode = document.getElementById("conflict");
  var storageKey = "exam-draft:" + data.examId;
  var version = data.version;
  var timer = null, inFlight = null, dirty = false, stopped = false, retryDelay = 2000;

  var TENDERNESS = ["not-tender", "tender", "reproduces-familiar-pain"];

  function questions() { return form.querySelectorAll(".q[data-link-id]"); }

  function inputsOf(q) { return q.querySelectorAll("input, select, textarea"); }

  function parseNumber(text, type) {
    var pattern = type === "integer" ? /^-?\d+$/ : /^-?\d+(\.\d+)?$/;
    return pattern.test(text) ? Number(text) : text;
  }

  /* The value of one question in the plain answers format, or undefined if unanswered. */
  function valueOf(q) {
    var type = q.dataset.type;
    if (type === "choice" || type === "boolean") {
      var checked = Array.prototype.filter.call(q.querySelectorAll("input"), function (i) {
        return i.checked;
      }).map(function (i) { return type === "boolean" ? i.value === "true" : i.value; });
      if (q.hasAttribute("data-repeats")) { return checked.length ? checked : undefined; }
      return checked.length ? checked[0] : undefined;
    }
    var input = q.querySelector("input[type=text], input[type=date], textarea");
    var text = input.value.trim();
    if (!text) { return undefined; }
    if (type === "integer" || type === "decimal") { return parseNumber(text, type); }
    if (type === "quantity") {
      return { value: parseNumber(text, "decimal"), unit: q.querySelector("select").value };
    }
    return input.value;
  }

  function enabledQuestion(q) { return !q.closest("[data-disabled]"); }

  function collect() {
    var answers = {};
    questions().forEach(function (q) {
      var value = valueOf(q);
      if (value !== undefined && enabledQuestion(q)) { answers[q.dataset.linkId] = value; }
    });
    return answers;
  }

  /* R4 enableWhen over the stored answers with this page's current values on top. */
  function holds(condition, answers) {
    var given = answers[condition.question];
    var values = given === undefined ? [] : (Array.isArray(given) ? given : [given]);
    if (condition.operator === "exists") { return (values.length > 0) === condition.answer; }
    return values.some(function (v) {
      switch (condition.operator) {
        case "=": return v === condition.answer;
        case "!=": return v !== condition.answer;
        case ">": return v > condition.answer;
        case "<": return v < condition.answer;
        case ">=": return v >= condition.answer;
        case "<=": return v <= condition.answer;
      }
      return false;
    });
  }

  function applyEnableWhen() {
    for (var pass = 0; pass < 5; pass += 1) {
      var answers = Object.assign({}, data.answers);
      data.linkIds.forEach(function (id) { delete answers[id]; });
      Object.assign(answers, collect());
      var changed = false;
      form.querySelectorAll("[data-enable-when]").forEach(function (node) {
        var rule = JSON.parse(node.dataset.enableWhen);
        var results = rule.conditions.map(function (c) { return holds(c, answers); });
        var on = rule.behavior === "any" ? results.some(Boolean) : results.every(Boolean);
        if (on === !node.hasAttribute("data-disabled")) { return; }
        changed = true;
        node.toggleAttribute("data-disabled", !on);
        node.hidden = !on;
        inputsOf(node).forEach(function (i) { i.disabled = !on; });
      });
      if (!changed) { return; }
    }
  }

  /* --- saving -------------------------------------------------------------------- */

  function setStatus(text, kind) {
    statusNode.textContent = text;
    statusNode.className = "save" + (kind ? " " + kind : "");
  }

  var keptLocally = true;
  function remember(payload) {
    try {
      localStorage.setItem(storageKey, JSON.stringify({
        version: version, section: payload.section, answers: payload.answers,
        oneStep: !!payload.oneStep, carried: payload.carried || [],
        at: new Date().toISOString() }));
      keptLocally = true;
    } catch (e) {
      keptLocally = false;  // storage full or disabled: only the server copy is safe
    }
  }

  function forget() { try { localStorage.removeItem(storageKey); } catch (e) { /* ignore */ } }

  function pending() {
    try { return JSON.parse(localStorage.getItem(storageKey) || "null"); } catch (e) { return null; }
  }

  function schedule(delay) {
    if (stopped) { return; }
    dirty = true;
    remember({ section: data.section, answers: collect(), oneStep: oneStep, carried: carried });
    setStatus("Saving…");
    clearTimeout(timer);
    timer = setTimeout(save, delay === undefined ? 700 : delay);
  }

  function send(payload, keepalive) {
    return fetch(data.saveUrl, {
      method: "PUT", credentials: "same-origin", keepalive: !!keepalive,
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "If-Match": '"' + version + '"', "X-CSRFToken": csrf },
      body: JSON.stringify(payload) });
  }

  function save(keepalive) {
    clearTimeout(timer);
    if (stopped) { return Promise.resolve(false); }
    if (inFlight) { return inFlight.then(function () { return dirty ? save(keepalive) : true; }); }
    var stored = pending();
    if (!stored) { dirty = false; return Promise.resolve(true); }
    dirty = false;
    var payload = { section: stored.section, answers: stored.answers, oneStep: !!stored.oneStep,
                    carried: stored.carried || [] };
    inFlight = send(payload, keepalive).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) {
          version = body.version;
          retryDelay = 2000;
          if (!dirty) { forget(); }
          else { remember({ section: data.section, answers: collect(), oneStep: oneStep, carried: carried }); }
          showErrors(body.errors || {});
          if (body.redFlags) { serverFlags = body.redFlags.flags || []; showRedFlags(); }
          showProgress(body.progress || {});
          return true;
        }
        if (response.status === 412 || response.status === 409) {
          stop(body.message || "This exam changed elsewhere. Reload to continue.", true);
          return false;
        }
        if (response.status === 401 && body.error === "signed-out") {
          // The sign-in ended (idle or signed out elsewhere): the change stays on this
          // tablet; after signing in again this page reopens and sends it.
          signedOut(body);
          return false;
        }
        if (response.status === 400 && body.error === "csrf") {
          // The session ended; the change stays on this tablet and a reload sends it.
          stop(body.message || "This page has expired. Reload to continue.", false);
          return false;
        }
        throw new Error("HTTP " + response.status);
      });
    }).catch(function () {
      dirty = true;
      setStatus("Not saved yet: kept on this tablet, retrying…", "offline");
      clearTimeout(timer);
      timer = setTimeout(save, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
      return false;
    }).then(function (ok) {
      inFlight = null;
      if (ok && !dirty) { setStatus((data.amending ? "Amending · " : "") + "All changes saved"); }
      return ok;
    });
    return inFlight;
  }

  /* Stop autosaving and say why; ``discard`` drops the unsent change (it was refused
   * because the exam changed elsewhere), otherwise a reload sends it. */
  function stop(message, discard) {
    stopped = true;
    clearTimeout(timer);
    if (discard) { forget(); }
    form.inert = true;  // nothing more can be saved from this page: reload first
    setStatus("Not saved", "error");
    conflictNode.textContent = "";
    var text = document.createElement("p");
    text.textContent = message;
    var reload = document.createElement("button");
    reload.type = "button";
    reload.className = "primary";
    reload.textContent = "Reload";
    reload.addEventListener("click", function () { window.location.reload(); });
    conflictNode.appendChild(text);
    conflictNode.appendChild(reload);
    conflictNode.hidden = false;
    conflictNode.scrollIntoView({ block: "center" });
  }

  /* The session ended: keep the unsent change and offer to sign in, then come back. */
  function signedOut(body) {
    stopped = true;
    clearTimeout(timer);
    form.inert = true;
    setStatus("Not sent: sign in again", "error");
    conflictNode.textContent = "";
    var text = document.createElement("p");
    text.textContent = body.message || "Your session has ended. Sign in again.";
    var link = document.createElement("a");
    link.className = "button primary";
    link.href = (body.login || "/login") + "?expired=1&next=" +
      encodeURIComponent(window.location.pathname + window.location.search);
    link.textContent = "Sign in again";
    conflictNode.appendChild(text);
    conflictNode.appendChild(link);
    conflictNode.hidden = false;
    conflictNode.scrollIntoView({ block: "center" });
  }

  function showErrors(errors) {
    var here = 0;
    questions().forEach(function (q) {
      var id = q.dataset.linkId;
      var node = document.getElementById("err-" + id);
      var messages = errors[id];
      if (messages) { here += 1; }
      node.textContent = messages ? messages.join(" ") : "";
      node.hidden = !messages;
      inputsOf(q).forEach(function (i) {
        if (messages) { i.setAttribute("aria-invalid", "true"); } else { i.removeAttribute("aria-invalid"); }
      });
    });
    data.errors = errors;
    var elsewhere = Object.keys(errors).length - here;
    var note = document.getElementById("errors-elsewhere");
    if (note) {
      note.hidden = elsewhere <= 0;
      note.textContent = elsewhere > 0 ? elsewhere + " question(s) on other pages need correcting (see Review)." : "";
    }
  }

  function showProgress(progress) {
    Object.keys(progress).forEach(function (section) {
      var node = document.querySelector('[data-count="' + section + '"]');
      if (!node) { return; }
      var done = progress[section];
      node.firstChild.nodeValue = done[0] + "/" + done[1];
      var link = node.closest("a");
      link.classList.toggle("complete", done[1] > 0 && done[0] === done[1]);
      link.classList.toggle("started", done[0] > 0 && done[0] < done[1]);
    });
  }

  /* --- widgets --------------------------------------------------------------------- */

  function numberInput(q) { return q.querySelector("input[type=text]"); }

  function setNumber(q, value) {
    var input = numberInput(q);
    input.value = value === null ? "" : String(value);
    var slider = q.querySelector("input[type=range]");
    if (slider) {
      slider.classList.toggle("unset", value === null);
      if (value !== null) { slider.value = value; }
    }
    changed(q);
  }

  function step(q, delta) {
    var input = numberInput(q);
    var min = input.dataset.min === undefined ? -Infinity : Number(input.dataset.min);
    var max = input.dataset.max === undefined ? Infinity : Number(input.dataset.max);
    var current = Number(input.value);
    if (input.value.trim() === "" || isNaN(current)) {
      // an empty field starts from a sensible value (the scale's middle, or its
      // minimum), never the maximum
      current = input.dataset.start === undefined ? (isFinite(min) ? min : 0)
        : Number(input.dataset.start);
    } else {
      current += delta;
    }
    setNumber(q, Math.min(max, Math.max(min, current)));
  }

  var watches = {};

  function stopwatch(button, q) {
    var id = q.dataset.linkId;
    var perUnit = Number(button.dataset.stopwatch);
    var running = watches[id];
    if (running) {
      clearInterval(running.tick);
      delete watches[id];
      var elapsed = (Date.now() - running.start) / 1000;
      button.textContent = "Timer";
      button.setAttribute("aria-pressed", "false");
      setNumber(q, Math.round(elapsed / perUnit));
      return;
    }
    var start = Date.now();
    button.setAttribute("aria-pressed", "true");
    var show = function () {
      var s = Math.floor((Date.now() - start) / 1000);
      button.textContent = "Stop " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    };
    show();
    watches[id] = { start: start, tick: setInterval(show, 1000) };
  }

  function setChoice(q, value) {
    q.querySelectorAll("input").forEach(function (i) { i.checked = i.value === String(value); });
  }

  function setNormal(row) {
    var value = row.dataset.normal;
    row.querySelectorAll(".q").forEach(function (q) {
      if (q.dataset.type === "integer") { numberInput(q).value = value; } else { setChoice(q, value); }
      syncRadios(q);
    });
    changed(row);
  }

  var lastChecked = {};
  function syncRadios(q) {
    q.querySelectorAll("input[type=radio]").forEach(function (i) {
      if (i.checked) { lastChecked[i.name] = i; }
      else if (lastChecked[i.name] === i) { delete lastChecked[i.name]; }
    });
    syncSite(q);
  }

  function syncSite(q) {
    var site = form.querySelector('[data-site="' + q.dataset.linkId + '"]');
    if (!site) { return; }
    var checked = q.querySelector("input:checked");
    site.dataset.value = checked ? checked.value : "";
    var label = q.querySelector(".vh").textContent;
    site.setAttribute("aria-label", label + ": " +
      (checked ? checked.parentNode.textContent.trim() : "not examined"));
  }

  function cycleSite(site) {
    var q = document.getElementById("q-" + site.dataset.site);
    var current = TENDERNESS.indexOf(site.dataset.value);
    setChoice(q, TENDERNESS[(current + 1) % TENDERNESS.length]);
    syncRadios(q);
    changed(q);
  }

  /* Answers carried from the previous exam keep their mark until changed here. */
  var carried = (data.carried || []).slice();
  var carriedValues = {};

  function uncarry() {
    carried = carried.filter(function (id) {
      var q = document.getElementById("q-" + id);
      var same = q && JSON.stringify(valueOf(q)) === carriedValues[id];
      if (!same) {
        var mark = form.querySelector('[data-carried-for="' + id + '"]');
        if (mark) { mark.hidden = true; }
      }
      return same;
    });
  }

  function changed(node, delay) {
    applyEnableWhen();
    uncarry();
    if (oneStep && node && node.closest && !screening) { oneStep = screenHolds(); }
    showRedFlags();
    schedule(delay);
    return node;
  }

  /* "None" (an exclusive option) and the other options of a multi-select exclude each
   * other: choosing one clears the rest, as the server's schema requires. */
  function exclusive(input) {
    var q = input.closest(".q");
    if (!input.checked || !q.hasAttribute("data-repeats")) { return; }
    var alone = input.hasAttribute("data-exclusive");
    q.querySelectorAll("input[type=checkbox]").forEach(function (other) {
      if (other !== input && (alone || other.hasAttribute("data-exclusive"))) { other.checked = false; }
    });
  }

  /* The one-tap screen: every question of it not yet answered gets its negative answer
   * ("no", "negative", "not tender"); an answer already given is kept. The page then
   * says the screen was recorded in one step, until one of its answers changes. */
  var screen = data.screen || [];
  var oneStep = !!data.oneStep, screening = false;

  function screenHolds() {
    var now = collect();
    return screen.length > 0 && screen.every(function (pair) { return now[pair[0]] === pair[1]; });
  }

  function runScreen() {
    screening = true;
    screen.forEach(function (pair) {
      var q = document.getElementById("q-" + pair[0]);
      if (!q || !enabledQuestion(q) || valueOf(q) !== undefined) { return; }
      setChoice(q, pair[1]);
      syncRadios(q);
    });
    oneStep = screenHolds();
    changed(form);
    screening = false;
  }

  /* --- red flags: shown the moment a "yes" is tapped, in the review banner's words -- */

  var URGENCY = ["emergency", "urgent", "routine"];
  var serverFlags = (data.redFlags || {}).flags || [];
  var triggers = (data.redFlagTriggers || {}).triggers || {};
  var flagWords = (data.redFlagTriggers || {}).flags || {};
  var alertNode = document.getElementById("red-flag-alert");
  var shownFlags = serverFlags.map(function (f) { return f.id; }).join(" ");

  function tappedFlags() {
    var found = [];
    data.linkIds.forEach(function (id) {
      var rule = triggers[id], q = document.getElementById("q-" + id);
      if (!rule || !q || !enabledQuestion(q)) { return; }
      q.querySelectorAll("input:checked").forEach(function (i) {
        (rule[i.value] || []).forEach(function (flag) { if (found.indexOf(flag) < 0) { found.push(flag); } });
      });
    });
    return found;
  }

  function showRedFlags() {
    if (!alertNode) { return; }
    var flags = serverFlags.slice();
    var ids = flags.map(function (f) { return f.id; });
    tappedFlags().forEach(function (id) {
      if (ids.indexOf(id) < 0 && flagWords[id]) { flags.push(flagWords[id]); ids.push(id); }
    });
    flags.sort(function (a, b) { return URGENCY.indexOf(a.urgency) - URGENCY.indexOf(b.urgency); });
    var key = flags.map(function (f) { return f.id; }).join(" ");
    if (key === shownFlags) { return; }
    shownFlags = key;
    alertNode.textContent = "";
    if (!flags.length) { return; }
    var urgency = flags[0].urgency;
    var banner = document.createElement("div");
    banner.id = "red-flags";
    banner.className = "banner " + (urgency === "emergency" ? "emergency" : "urgent");
    banner.setAttribute("role", "alert");
    var heading = document.createElement("h2");
    heading.textContent = "Red flags: " + urgency;
    var list = document.createElement("ul");
    flags.forEach(function (f) {
      var li = document.createElement("li");
      var name = document.createElement("strong");
      name.textContent = f.display + ".";
      li.appendChild(name);
      li.appendChild(document.createTextNode(" " + f.action));
      list.appendChild(li);
    });
    banner.appendChild(heading);
    banner.appendChild(list);
    alertNode.appendChild(banner);
  }

  form.addEventListener("click", function (event) {
    var target = event.target;
    var q = target.closest(".q");
    if (target.matches("input[type=radio]")) {
      if (lastChecked[target.name] === target) {  // a second tap clears the answer
        target.checked = false;
        delete lastChecked[target.name];
        syncSite(q);
        changed(q);
      }
      return;
    }
    var button = target.closest("button");
    if (button && button.hasAttribute("data-screen")) { runScreen(); return; }
    if (button && button.dataset.step) { step(q, Number(button.dataset.step)); }
    else if (button && button.hasAttribute("data-clear")) {
      inputsOf(q).forEach(function (i) { if (i.type === "text") { i.value = ""; } });
      setNumber(q, null);
    }
    else if (button && button.dataset.stopwatch) { stopwatch(button, q); }
    else if (button && button.dataset.normalRow) { setNormal(button.closest("[data-row]")); }
    else if (button && button.hasAttribute("data-normal-all")) {
      form.querySelectorAll("[data-row][data-normal]").forEach(setNormal);
    }
    var site = target.closest("[data-site]");
    if (site) { cycleSite(site); }
  });

  form.addEventListener("keydown", function (event) {
    var site = event.target.closest("[data-site]");
    if (site && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      cycleSite(site);
    }
  });

  form.addEventListener("change", function (event) {
    var q = event.target.closest(".q");
    if (event.target.matches("input[type=radio]")) { syncRadios(q); }
    if (event.target.matches("input[type=checkbox]")) { exclusive(event.target); }
    if (event.target.matches("input[type=range]")) {
      numberInput(q).value = event.target.value;
      event.target.classList.remove("unset");
    }
    changed(q);
  });

  form.addEventListener("input", function (event) {
    var q = event.target.closest(".q");
    if (event.target.matches("input[type=range]")) {
      numberInput(q).value = event.target.value;
      event.target.classList.remove("unset");
      return;
    }
    if (event.target.matches("input[type=text], textarea")) { changed(q, 1200); }
  });

  form.addEventListener("submit", function (event) { event.preventDefault(); });

  /* Leave only after the last change is stored; a failed save stays on this tablet. */
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[href]");
    if (!link || form.contains(link) || !(dirty || inFlight) || stopped) { return; }
    event.preventDefault();
    save().then(function () { window.location.href = link.href; });
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden" && (dirty || inFlight)) { save(true); }
  });
  window.addEventListener("pagehide", function () { if (dirty) { save(true); } });
  window.addEventListener("online", function () { if (dirty) { save(); } });
  // Ask before leaving only when an unsent change is not kept on this tablet either.
  window.addEventListener("beforeunload", function (event) {
    if (dirty && !stopped && !keptLocally) { event.preventDefault(); event.returnValue = ""; }
  });

  /* --- start ----------------------------------------------------------------------- */

  data.amending = statusNode.textContent.indexOf("Amending") === 0;
  carried.forEach(function (id) {
    var q = document.getElementById("q-" + id);
    carriedValues[id] = q ? JSON.stringify(valueOf(q)) : "";
  });
  questions().forEach(syncRadios);
  applyEnableWhen();
  showErrors(data.errors || {});
  var unsent = pending();
  if (unsent) {
    if (unsent.version === version) {
      // A change that never reached the server (the tablet slept or went offline).
      if (unsent.section === data.section) {
        Object.keys(unsent.answers).forEach(function (id) { restore(id, unsent.answers[id]); });
        oneStep = !!unsent.oneStep;
        if (Array.isArray(unsent.carried)) { carried = carried.filter(function (id) { return unsent.carried.indexOf(id) >= 0; }); }
        data.linkIds.forEach(function (id) { if (!(id in unsent.answers)) { restore(id, undefined); } });
        questions().forEach(syncRadios);
        applyEnableWhen();
        showRedFlags();
      }
      dirty = true;
      setStatus("Sending changes kept on this tablet…");
      save();
    } else if (Object.keys(unsent.answers).every(function (id) {
      return JSON.stringify(unsent.answers[id]) === JSON.stringify(data.answers[id]);
    })) {
      forget();  // it did arrive; only the reply was lost
    } else {
      stop("Changes made on this tablet at " + new Date(unsent.at).toLocaleTimeString() +
           " could not be saved: the exam was changed elsewhere in the meantime.", true);
    }
  }

  function restore(id, value) {
    var q = document.getElementById("q-" + id);
    if (!q) { return; }
    var type = q.dataset.type;
    if (type === "choice" || type === "boolean") {
      var wanted = value === undefined ? [] : (Array.isArray(value) ? value : [value]).map(String);
      q.querySelectorAll("input").forEach(function (i) { i.checked = wanted.indexOf(i.value) >= 0; });
    } else if (type === "quantity") {
      numberInput(q).value = value === undefined ? "" : String(value.value);
      if (value !== undefined) { q.querySelector("select").value = value.unit; }
    } else {
      var input = q.querySelector("input[type=text], input[type=date], textarea");
      input.value = value === undefined ? "" : String(value);
      var slider = q.querySelector("input[type=range]");
      if (slider && value !== undefined) { slider.value = value; slider.classList.remove("unset"); }
    }
  }
})();
