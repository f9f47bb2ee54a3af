/* The rating form's comfort layer: keyboard shortcuts, hallucination spans, differences, timing.
 * The form works without it; this file never reads or sends anything about who wrote an output.
 * Texts are only ever put into the page with textContent, never as HTML. */
(function () {
  "use strict";

  var form = document.getElementById("rate-form");
  if (!form) { return; }

  /* --- time on task: only while the page is visible ------------------------------------------ */
  var visibleMs = 0;
  var since = document.hidden ? null : performance.now();
  document.addEventListener("visibilitychange", function () {
    if (document.hidden && since !== null) { visibleMs += performance.now() - since; since = null; }
    else if (!document.hidden && since === null) { since = performance.now(); }
  });
  function elapsedMs() { return Math.round(visibleMs + (since !== null ? performance.now() - since : 0)); }

  /* --- scales: the "current" scale takes digit keys --------------------------------------------- */
  var scales = Array.prototype.slice.call(form.querySelectorAll("fieldset.scale"));
  var current = null;
  function answered(fs) { return !!fs.querySelector("input:checked"); }
  function firstUnanswered() { for (var i = 0; i < scales.length; i++) { if (!answered(scales[i])) { return scales[i]; } } return null; }
  function setCurrent(fs) {
    current = fs;
    scales.forEach(function (s) { s.classList.toggle("current", s === fs); });
  }
  function showAnchor(fs) {
    var checked = fs.querySelector("input:checked");
    var anchor = fs.querySelector(".anchor");
    anchor.textContent = checked ? checked.getAttribute("data-anchor") : anchor.getAttribute("data-help");
    anchor.classList.toggle("chosen", !!checked);
  }
  scales.forEach(function (fs) {
    showAnchor(fs);
    fs.addEventListener("change", function () { showAnchor(fs); updateMissing(false); });
    fs.addEventListener("focusin", function () { setCurrent(fs); });
    fs.addEventListener("mouseover", function (e) {
      var input = e.target.closest("label") && document.getElementById(e.target.closest("label").htmlFor);
      if (input) { fs.querySelector(".anchor").textContent = input.getAttribute("data-anchor"); }
    });
    fs.addEventListener("mouseleave", function () { showAnchor(fs); });
  });
  setCurrent(firstUnanswered());

  function focusAfter(fs) {
    var rest = scales.slice(scales.indexOf(fs) + 1).filter(function (s) { return !answered(s); });
    var next = rest[0] || firstUnanswered();
    if (next) {
      setCurrent(next);
      var target = next.querySelector("input:checked") || next.querySelector("input");
      target.focus();
      return;
    }
    setCurrent(null);
    var pref = document.getElementById("preference");
    if (pref && !pref.querySelector("input:checked")) { pref.querySelector("input").focus(); }
    else { document.getElementById("submit-rating").focus(); }
  }

  function score(digit) {
    var active = document.activeElement && document.activeElement.closest ? document.activeElement.closest("fieldset.scale") : null;
    var fs = active || current || firstUnanswered();
    if (!fs) { return false; }
    var input = fs.querySelector('input[value="' + digit + '"]');
    if (!input) { return false; }
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    focusAfter(fs);
    return true;
  }

  function prefer(value) {
    var input = document.getElementById("pref-" + value);
    if (!input) { return false; }
    input.checked = true;
    input.focus();
    updateMissing(false);
    return true;
  }

  /* --- text panes: differences and flagged spans are drawn from the original text -------------- */
  var panes = {};
  Array.prototype.forEach.call(form.querySelectorAll("pre.output"), function (pre) {
    panes[pre.getAttribute("data-side")] = { pre: pre, text: pre.textContent, diff: null, spans: [] };
  });
  Object.keys(panes).forEach(function (side) {
    var input = document.getElementById("spans-input-" + side);
    try { panes[side].spans = JSON.parse(input ? input.value || "[]" : "[]"); } catch (e) { panes[side].spans = []; }
  });

  function draw(side) {
    var pane = panes[side];
    var text = pane.text;
    var cls = new Uint8Array(text.length);
    if (pane.diff) { pane.diff.forEach(function (r) { for (var i = r[0]; i < r[1]; i++) { cls[i] |= 1; } }); }
    pane.spans.forEach(function (s) { for (var i = s.start; i < s.end && i < text.length; i++) { cls[i] |= 2; } });
    var pre = pane.pre;
    var keepScroll = pre.scrollTop;
    while (pre.firstChild) { pre.removeChild(pre.firstChild); }
    var start = 0;
    for (var i = 1; i <= text.length; i++) {
      if (i === text.length || cls[i] !== cls[start]) {
        var piece = text.slice(start, i);
        if (cls[start] === 0) { pre.appendChild(document.createTextNode(piece)); }
        else {
          var mark = document.createElement("mark");
          mark.className = (cls[start] & 1 ? "diff " : "") + (cls[start] & 2 ? "flag" : "");
          mark.textContent = piece;
          pre.appendChild(mark);
        }
        start = i;
      }
    }
    pre.scrollTop = keepScroll;
  }

  function tokens(text) {
    var out = [], re = /\S+/g, m;
    while ((m = re.exec(text)) !== null) { out.push({ w: m[0], s: m.index, e: m.index + m[0].length }); }
    return out;
  }
  function diffRanges(a, b) {
    var ta = tokens(a), tb = tokens(b), n = ta.length, m = tb.length;
    if (n * m > 4000000) { return null; }
    var dp = [], i, j;
    for (i = 0; i <= n; i++) { dp.push(new Uint16Array(m + 1)); }
    for (i = n - 1; i >= 0; i--) {
      for (j = m - 1; j >= 0; j--) {
        dp[i][j] = ta[i].w === tb[j].w ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
      }
    }
    var ra = [], rb = [];
    i = 0; j = 0;
    while (i < n && j < m) {
      if (ta[i].w === tb[j].w) { i++; j++; }
      else if (dp[i + 1][j] >= dp[i][j + 1]) { ra.push([ta[i].s, ta[i].e]); i++; }
      else { rb.push([tb[j].s, tb[j].e]); j++; }
    }
    for (; i < n; i++) { ra.push([ta[i].s, ta[i].e]); }
    for (; j < m; j++) { rb.push([tb[j].s, tb[j].e]); }
    return [ra, rb];
  }

  var diffToggle = document.getElementById("diff-toggle");
  if (diffToggle && panes.A && panes.B) {
    diffToggle.addEventListener("change", function () {
      if (diffToggle.checked) {
        var ranges = diffRanges(panes.A.text, panes.B.text);
        if (!ranges) { diffToggle.checked = false; announce("These outputs are too long to compare word by word."); return; }
        panes.A.diff = ranges[0]; panes.B.diff = ranges[1];
      } else { panes.A.diff = null; panes.B.diff = null; }
      draw("A"); draw("B");
    });
  }

  /* --- hallucination spans -------------------------------------------------------------------- */
  function offsetIn(pre, node, offset) {
    var range = document.createRange();
    range.selectNodeContents(pre);
    range.setEnd(node, offset);
    return range.toString().length;
  }
  function selectionSpan() {
    var sel = window.getSelection();
    if (!sel || sel.isCollapsed || sel.rangeCount === 0) { return null; }
    var range = sel.getRangeAt(0);
    var sides = Object.keys(panes);
    for (var k = 0; k < sides.length; k++) {
      var pane = panes[sides[k]];
      if (!range.intersectsNode(pane.pre)) { continue; }
      var start = pane.pre.contains(range.startContainer) ? offsetIn(pane.pre, range.startContainer, range.startOffset) : 0;
      var end = pane.pre.contains(range.endContainer) ? offsetIn(pane.pre, range.endContainer, range.endOffset) : pane.text.length;
      while (start < end && /\s/.test(pane.text[start])) { start++; }
      while (end > start && /\s/.test(pane.text[end - 1])) { end--; }
      if (end > start) { return { side: sides[k], start: start, end: end }; }
    }
    return null;
  }
  function saveSpans(side) {
    var input = document.getElementById("spans-input-" + side);
    if (input) { input.value = JSON.stringify(panes[side].spans.map(function (s) { return { start: s.start, end: s.end }; })); }
    listSpans(side);
    draw(side);
  }
  function listSpans(side) {
    var list = document.getElementById("spans-" + side);
    if (!list) { return; }
    while (list.firstChild) { list.removeChild(list.firstChild); }
    panes[side].spans.forEach(function (s, index) {
      var li = document.createElement("li");
      var quote = document.createElement("q");
      var text = panes[side].text.slice(s.start, s.end);
      quote.textContent = text.length > 80 ? text.slice(0, 77) + "…" : text;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small link";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove flagged passage " + (index + 1) + " of output " + side);
      remove.addEventListener("click", function () { panes[side].spans.splice(index, 1); saveSpans(side); });
      li.appendChild(quote);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(remove);
      list.appendChild(li);
    });
  }
  function flag(sideHint) {
    var span = selectionSpan();
    if (span) {
      panes[span.side].spans.push({ start: span.start, end: span.end });
      panes[span.side].spans.sort(function (x, y) { return x.start - y.start; });
      var box = document.getElementById("halluc-" + span.side);
      if (box) { box.checked = true; }
      window.getSelection().removeAllRanges();
      saveSpans(span.side);
      announce("Flagged a passage of output " + span.side + ".");
      return true;
    }
    var side = sideHint;
    if (!side && document.activeElement && document.activeElement.closest) {
      var section = document.activeElement.closest("section.side");
      side = section ? section.getAttribute("data-side") : null;
    }
    var target = document.getElementById("halluc-" + (side || "A"));
    if (!target) { return false; }
    if (side) { target.checked = !target.checked; }
    target.focus();
    announce(side ? "Hallucination flag for output " + side + (target.checked ? " on." : " off.") : "Select the invented text in an output first, then press h.");
    return true;
  }
  Array.prototype.forEach.call(form.querySelectorAll("button.mark-span"), function (button) {
    // mousedown would clear the selection before click: read it first.
    button.addEventListener("mousedown", function (e) { e.preventDefault(); });
    button.addEventListener("click", function () {
      if (!selectionSpan()) { announce("Select the invented text in output " + button.getAttribute("data-side") + " first."); return; }
      flag(button.getAttribute("data-side"));
    });
  });
  Object.keys(panes).forEach(function (side) { listSpans(side); if (panes[side].spans.length) { draw(side); } });

  /* --- messages, missing answers, submit ------------------------------------------------------- */
  var missing = document.getElementById("missing");
  var notice = document.getElementById("notice");
  function announce(text) { notice.textContent = text; }
  function missingItems() {
    var items = scales.filter(function (s) { return !answered(s); });
    var pref = document.getElementById("preference");
    if (pref && !pref.querySelector("input:checked")) { items.push(pref); }
    return items;
  }
  function updateMissing(force) {
    if (!force && !missing.textContent) { return; }
    var items = missingItems();
    missing.textContent = items.length ? "Still to answer: " + items.length + (items.length === 1 ? " question" : " questions") + "." : "";
  }
  var sending = false;
  form.addEventListener("submit", function (e) {
    var items = missingItems();
    if (items.length) {
      e.preventDefault();
      updateMissing(true);
      items[0].classList.add("invalid");
      var first = items[0].querySelector("input");
      if (items[0].classList.contains("scale")) { setCurrent(items[0]); }
      first.focus();
      return;
    }
    if (sending) { e.preventDefault(); return; }
    sending = true;
    document.getElementById("time-on-task").value = String(elapsedMs());
    document.getElementById("submit-rating").disabled = true;
  });
  form.addEventListener("change", function (e) {
    var fs = e.target.closest && e.target.closest("fieldset.invalid");
    if (fs && fs.querySelector("input:checked")) { fs.classList.remove("invalid"); }
  });
  function submit() { if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); } }

  /* --- lease countdown ------------------------------------------------------------------------- */
  var lease = document.getElementById("lease");
  if (lease) {
    var deadline = Date.now() + 1000 * parseInt(lease.getAttribute("data-seconds"), 10);
    var tick = function () {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      if (left === 0) {
        lease.textContent = "Your time on this task is up: submit now, it is kept if no one else has taken the task.";
        lease.classList.add("warn");
        return;
      }
      var min = Math.floor(left / 60), sec = left % 60;
      lease.textContent = "Held for you for " + min + ":" + (sec < 10 ? "0" : "") + sec;
      lease.classList.toggle("warn", left < 60);
      window.setTimeout(tick, 1000);
    };
    tick();
  }

  /* --- keyboard -------------------------------------------------------------------------------- */
  var help = document.getElementById("shortcuts");
  var helpToggle = document.getElementById("help-toggle");
  function toggleHelp() {
    help.hidden = !help.hidden;
    helpToggle.setAttribute("aria-expanded", String(!help.hidden));
  }
  helpToggle.addEventListener("click", toggleHelp);
  var skip = document.getElementById("skip");

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    var typing = t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text"));
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      if (skip && skip.contains(t)) { return; }
      e.preventDefault(); submit(); return;
    }
    if (typing) { if (e.key === "Escape") { t.blur(); } return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (skip && skip.contains(t)) { return; }
    var handled = false;
    var key = e.key;
    if (/^[0-9]$/.test(key)) { handled = score(key); }
    else if (key === "a" || key === "b") { handled = prefer(key.toUpperCase()); }
    else if (key === "t") { handled = prefer("tie"); }
    else if (key === "x") { handled = prefer("both_bad"); }
    else if (key === "h") { handled = flag(null); }
    else if (key === "d" && diffToggle) { diffToggle.checked = !diffToggle.checked; diffToggle.dispatchEvent(new Event("change")); handled = true; }
    else if (key === "r") { var r = document.getElementById("rationale"); if (r) { r.focus(); handled = true; } }
    else if (key === "s" && skip) { skip.open = true; skip.querySelector("input[type=radio]").focus(); handled = true; }
    else if (key === "?") { toggleHelp(); handled = true; }
    else if (key === "Enter" && t && t.tagName === "INPUT") { submit(); handled = true; }
    if (handled) { e.preventDefault(); }
  });

  var formError = document.getElementById("form-error");
  if (formError) { formError.focus(); }
  document.documentElement.setAttribute("data-rate-ready", "1");
})();
