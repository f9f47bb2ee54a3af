// Suite upload pages: drag and drop onto the file field, the suite name from the file name,
// and the justification field shown only when personal data is kept. Works without it too.
(function () {
  "use strict";
  var zone = document.getElementById("dropzone");
  var input = document.getElementById("id_file");
  var chosen = document.getElementById("file-chosen");
  var name = document.getElementById("id_name");

  function showChosen() {
    if (!input || !chosen) return;
    var file = input.files && input.files[0];
    chosen.textContent = file ? "Chosen: " + file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)" : "";
    if (file && name && !name.value) {
      name.value = file.name.replace(/\.tar\.gz$|\.[^.]+$/i, "").replace(/[_-]+/g, " ").trim();
    }
  }

  if (zone && input) {
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.remove("dragging");
      });
    });
    zone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        showChosen();
      }
    });
    input.addEventListener("change", showChosen);
    // A file chosen before this script ran (a quick click on a slow page, or one the browser restored
    // on going back) fired its change event too early: show it now.
    showChosen();
  }

  var justification = document.getElementById("justification-field");
  var radios = document.querySelectorAll("input[name='pii_action']");
  function toggleJustification() {
    if (!justification) return;
    var keep = document.querySelector("input[name='pii_action'][value='keep']");
    var hasErrors = justification.querySelector(".errors");
    justification.classList.toggle("hidden", !(keep && keep.checked) && !hasErrors);
  }
  radios.forEach(function (radio) { radio.addEventListener("change", toggleJustification); });
  toggleJustification();
})();
