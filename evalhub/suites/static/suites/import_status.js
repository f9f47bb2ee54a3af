// Follows a large upload being read, or a queued suite import, from the API every 2 s and reloads the
// page when it has finished (the page then shows the preview, the new version, or why nothing was
// imported). Without JavaScript the page refreshes itself every 5 s (a <noscript> meta refresh).
(function () {
  "use strict";
  var card = document.getElementById("import-status");
  if (!card || card.dataset.finished === "true") { return; }
  var url = card.dataset.statusUrl;

  function show(name, value) {
    var el = card.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = String(value); }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (u) {
        if (["reading", "pending", "screening"].indexOf(u.status) < 0) { window.location.reload(); return; }
        show("status", { reading: "Reading the file", pending: "Pending", screening: "Screening" }[u.status]);
        show("done", u.rows_screened);
        show("total", u.rows_total);
        show("percent", u.rows_total ? Math.floor(100 * u.rows_screened / u.rows_total) : 0);
        var bar = card.querySelector('[data-field="bar"]');
        if (bar) { bar.max = Math.max(u.rows_total, 1); bar.value = u.rows_screened; }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();
