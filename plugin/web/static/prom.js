/* Outcome questionnaires: autosave as the exam's (localStorage first, then PUT with
 * If-Match; a refused save is shown, never overwritten) and, on the patient's screens,
 * the form's Back / Next / Finish sent only once the answer's save is done. Scores are
 * never computed here: the server's come back with each save and are shown as given. */
(function () {
  "use strict";
  var dataNode = document.getElementById("prom-data");
  var form = document.getElementById("prom-form");
  if (!dataNode || !form) { return; }
  var data = JSON.parse(dataNode.textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var statusNode = document.getElementById("save-status");
  var conflictNode = document.getElementById("conflict");
  var scoresNode = document.getElementById("prom-scores");
  var storageKey = "prom-draft:" + data.promId;
  var version = data.version;
  var pending = {}, inFlight = null, stopped = false, timer = null;

  function say(text) { if (statusNode) { statusNode.textContent = text; } }

  function setVersion(v) {
    version = v;
    document.querySelectorAll("input[data-version]").forEach(function (i) { i.value = v; });
  }

  function valueOf(q) {
    var radios = q.querySelectorAll("input[type=radio]");
    if (radios.length) {
      var chosen = Array.prototype.find.call(radios, function (r) { return r.checked; });
      if (!chosen) { return null; }
      return q.dataset.type === "integer" ? Number(chosen.value) : chosen.value;
    }
    var input = q.querySelector("input[type=text]");
    var text = input ? input.value.trim() : "";
    if (!text) { return null; }
    if ((q.dataset.type === "integer" || q.dataset.type === "decimal") && /^-?\d+(\.\d+)?$/.test(text)) {
      return Number(text);
    }
    return text;
  }

  function keep() {
    try { localStorage.setItem(storageKey, JSON.stringify({ version: version, answers: pending })); }
    catch (e) { /* private mode: the server copy is the only one */ }
  }

  function forget() { try { localStorage.removeItem(storageKey); } catch (e) { /* ignore */ } }

  function showErrors(errors) {
    form.querySelectorAll(".prom-q").forEach(function (q) {
      var node = q.querySelector(".field-error");
      var messages = errors[q.dataset.linkId];
      if (!node) { return; }
      node.textContent = messages ? messages.join(" ") : "";
      node.hidden = !messages;
    });
  }

  function showScores(scores) {
    if (!scoresNode || !scores) { return; }
    scoresNode.textContent = "";
    scores.forEach(function (pair) {
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = pair[0]; dd.textContent = pair[1];
      scoresNode.appendChild(dt); scoresNode.appendChild(dd);
    });
  }

  function refused(message) {
    stopped = true;
    conflictNode.textContent = message + " ";
    var reload = document.createElement("a");
    reload.href = window.location.pathname;
    reload.textContent = "Reload";
    conflictNode.appendChild(reload);
    conflictNode.hidden = false;
    forget();
    say("Not saved.");
  }

  function send() {
    if (stopped || inFlight || !Object.keys(pending).length) { return inFlight || Promise.resolve(); }
    var sending = pending;
    pending = {};
    say("Saving…");
    inFlight = fetch(data.saveUrl, {
      method: "PUT", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "If-Match": '"' + version + '"',
                 "X-CSRFToken": csrf },
      body: JSON.stringify({ answers: sending })
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) {
          setVersion(body.version);
          showErrors(body.errors || {});
          showScores(body.scores);
          if (!Object.keys(pending).length) { forget(); }
          say("Saved.");
        } else if (response.status === 412 || response.status === 409 || response.status === 403) {
          refused(body.message || "Not saved.");
        } else if (response.status === 422) {
          showErrors(body.errors || {});
          say(body.message || "Not saved.");
        } else {
          pending = Object.assign(sending, pending);
          keep();
          say("Not saved yet: it will be sent again.");
        }
      });
    }, function () {
      pending = Object.assign(sending, pending);
      keep();
      say("Offline: your answer is kept on this tablet and sent when it can be.");
      timer = window.setTimeout(send, 3000);
    }).then(function () {
      inFlight = null;
      if (Object.keys(pending).length && !stopped) { return send(); }
    });
    return inFlight;
  }

  function changed(event) {
    var q = event.target.closest(".prom-q");
    if (!q || stopped) { return; }
    pending[q.dataset.linkId] = valueOf(q);
    keep();
    window.clearTimeout(timer);
    timer = window.setTimeout(send, event.type === "input" ? 700 : 0);
  }

  form.addEventListener("change", changed);
  form.addEventListener("input", function (event) {
    if (event.target.type === "text") { changed(event); }
  });

  /* The patient's screen: Back / Next / Finish go once the answer is saved. */
  if (form.getAttribute("method") === "post") {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sending) { return; }
      event.preventDefault();
      var go = document.createElement("input");
      go.type = "hidden"; go.name = "go";
      go.value = event.submitter ? event.submitter.value : "next";
      window.clearTimeout(timer);
      Promise.resolve(send()).then(function () {
        if (stopped) { return; }
        form.appendChild(go);
        form.dataset.sending = "1";
        form.submit();
      });
    });
  }

  /* A change kept on the tablet by an earlier page (offline) is sent again now. */
  try {
    var kept = JSON.parse(localStorage.getItem(storageKey) || "null");
    if (kept && kept.answers && Object.keys(kept.answers).length) {
      pending = kept.answers;
      if (kept.version !== version) {
        refused("An answer kept on this tablet was not saved: the questionnaire changed " +
                "elsewhere meanwhile.");
      } else { send(); }
    }
  } catch (e) { /* ignore */ }
})();
