// Asks for the report's build state (which starts the build) until it is ready, then reloads the page.
(function () {
  "use strict";
  var card = document.getElementById("report-building");
  if (!card) { return; }
  var url = card.dataset.stateUrl;
  var expected = parseFloat(card.dataset.expected);
  var started = Date.now();
  var bar = card.querySelector('[data-field="bar"]');
  var elapsed = card.querySelector('[data-field="elapsed"]');
  var error = card.querySelector('[data-field="error"]');

  function tick() {
    var seconds = (Date.now() - started) / 1000;
    elapsed.textContent = String(Math.round(seconds));
    // With a previous build's duration the bar estimates; without one it stays indeterminate.
    if (expected > 0) { bar.max = 1; bar.value = Math.min(0.95, seconds / expected); }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { return Promise.reject(new Error("the server answered " + response.status)); }
        return response.json();
      })
      .then(function (s) {
        if (s.ready) { window.location.reload(); return; }
        if (s.state === "failed") { error.textContent = s.error || "The build failed."; bar.remove(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function (e) { error.textContent = "Could not ask for the report's state: " + e.message + ". Retrying."; window.setTimeout(poll, 5000); });
  }
  window.setInterval(tick, 500);
  poll();
})();
