/* The review's impression and plan: autosaved on each change (the form's own fields,
   form-encoded, the version in If-Match, like the answers' autosave), and signing waits
   for a save in flight so the signature quotes the version that holds the plan. A
   refused save (stale version, a field message) is shown, never dropped silently. */
(function () {
  "use strict";
  var form = document.getElementById("impression-form");
  if (!form) { return; }
  var status = document.getElementById("impression-status");
  var pending = Promise.resolve(true);
  var saving = 0;
  var versions = function () { return document.querySelectorAll('input[name="version"]'); };

  function say(text) { status.textContent = text; }

  function save() {
    var body = new URLSearchParams(new FormData(form));
    saving += 1;
    pending = pending.then(function () {
      var version = form.querySelector('input[name="version"]').value;  // after the last save
      say("Saving…");
      return fetch(form.action, {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "Accept": "application/json", "If-Match": '"' + version + '"' }
      }).then(function (response) {
        return response.json().then(function (data) {
          if (response.ok) {
            versions().forEach(function (input) { input.value = data.version; });
            say("Saved.");
            if (body.get("add.service")) {  // the added referral becomes a row of its own
              window.location.reload();
            }
            return true;
          }
          say(data.message || "Not saved.");
          return false;
        });
      }).catch(function () { say("Not saved: no connection. Use Save."); return false; })
        .finally(function () { saving -= 1; });
    });
    return pending;
  }

  form.addEventListener("change", function () { save(); });
  var sign = document.getElementById("sign-form");
  if (sign) {
    sign.addEventListener("submit", function (event) {
      if (!saving) { return; }  // nothing in flight: the version fields are current
      event.preventDefault();
      pending.then(function () { sign.submit(); });  // submit(): no second event
    });
  }
}());
