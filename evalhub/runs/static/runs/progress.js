// Refreshes a run's progress card from the API every 2 s until the run has finished.
(function () {
  "use strict";
  var card = document.getElementById("run-progress");
  if (!card || card.dataset.finished === "true") { return; }
  var url = card.dataset.progressUrl;

  function show(name, value) {
    var el = card.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value === null || value === undefined ? "—" : String(value); }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (p) {
        ["status", "done", "total", "percent", "reused", "chunks_done", "chunks_total",
         "tokens_per_second", "rejected", "truncated", "error"].forEach(function (name) { show(name, p[name]); });
        show("eta_seconds", p.eta_seconds === null ? null : Math.round(p.eta_seconds) + " s");
        var bar = card.querySelector('[data-field="bar"]');
        if (bar) { bar.max = Math.max(p.total, 1); bar.value = p.done; }
        if (p.finished) { window.location.reload(); } else { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();
