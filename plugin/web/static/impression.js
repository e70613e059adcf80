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
  var versions = function () { return document.querySelectorAll('input[name="version"]'); };

  function say(text) { status.textContent = text; }

  function save() {
    var body = new URLSearchParams(new FormData(form));
    var version = form.querySelector('input[name="version"]').value;
    pending = pending.then(function () {
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
      }).catch(function () { say("Not saved: no connection. Use Save."); return false; });
    });
    return pending;
  }

  form.addEventListener("change", function () { save(); });
  var sign = document.getElementById("sign-form");
  if (sign) {
    sign.addEventListener("submit", function (event) {
      if (sign.dataset.ready === "1") { return; }
      event.preventDefault();
      pending.then(function () {
        sign.dataset.ready = "1";
        sign.requestSubmit ? sign.requestSubmit() : sign.submit();
      });
    });
  }
}());
