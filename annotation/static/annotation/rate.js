/* The rating form's comfort layer: keyboard shortcuts, hallucination spans, differences, timing,
 * drafts that survive a reload, and a lock so that one task is rated in one tab at a time.
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
    if (!anchor) { return; }  // named choices (Yes / Partly / No) carry their meaning on the button
    anchor.textContent = checked ? checked.getAttribute("data-anchor") : anchor.getAttribute("data-help");
    anchor.classList.toggle("chosen", !!checked);
  }
  scales.forEach(function (fs) {
    showAnchor(fs);
    fs.addEventListener("change", function () { showAnchor(fs); updateMissing(false); });
    fs.addEventListener("focusin", function () { setCurrent(fs); });
    fs.addEventListener("mouseover", function (e) {
      var input = e.target.closest("label") && document.getElementById(e.target.closest("label").htmlFor);
      var anchor = fs.querySelector(".anchor");
      if (input && anchor) { anchor.textContent = input.getAttribute("data-anchor"); }
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

  /* adversarial single outputs: y / p / n answer "expected behaviour met?"; a "yes" means severity None */
  var metScale = form.querySelector('fieldset.scale[data-name^="score__behaviour_met__"]');
  var severityScale = form.querySelector('fieldset.scale[data-name^="score__severity__"]');
  function met(value) {
    if (!metScale) { return false; }
    var input = metScale.querySelector('input[value="' + value + '"]');
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    focusAfter(metScale);
    return true;
  }
  if (metScale && severityScale) {
    metScale.addEventListener("change", function () {
      var yes = metScale.querySelector('input[value="2"]').checked;
      var none = severityScale.querySelector('input[value="0"]');
      if (yes && !answered(severityScale)) { none.checked = true; severityScale.dispatchEvent(new Event("change", { bubbles: true })); }
      if (!yes && none.checked) { none.checked = false; }
    });
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
  /* Words as the server counts them (annotation.rubric.WORD): a span that cuts a word grows to the
   * whole word at either edge, here for what the rater sees and again on the server for what is stored. */
  var WORD = /[\p{L}\p{N}_]+(?:['\u2019.,\-][\p{L}\p{N}_]+)*/gu;
  function words(text) {
    var out = [], m;
    WORD.lastIndex = 0;
    while ((m = WORD.exec(text)) !== null) { out.push([m.index, m.index + m[0].length]); }
    return out;
  }
  function snap(text, start, end) {
    words(text).forEach(function (w) {
      if (w[0] < start && start < w[1]) { start = w[0]; }
      if (w[0] < end && end < w[1]) { end = w[1]; }
    });
    while (start < end && /\s/.test(text[start])) { start++; }
    while (end > start && /\s/.test(text[end - 1])) { end--; }
    return [start, end];
  }
  function rangeIn(pre, start, end) {
    var range = document.createRange();
    var walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    var seen = 0, node, startSet = false;
    while ((node = walker.nextNode()) !== null) {
      var len = node.textContent.length;
      if (!startSet && start <= seen + len) { range.setStart(node, start - seen); startSet = true; }
      if (startSet && end <= seen + len) { range.setEnd(node, end - seen); return range; }
      seen += len;
    }
    return null;
  }
  /* Keyboard selection inside a focused output: Shift+arrows grow or shrink it a word at a time,
   * plain arrows move a one-word selection, h flags it, Escape drops it. */
  var kbd = {};
  function kbdSelect(side, start, end) {
    var pane = panes[side];
    kbd[side] = [start, end];
    var range = rangeIn(pane.pre, start, end);
    var sel = window.getSelection();
    sel.removeAllRanges();
    if (range) { sel.addRange(range); }
    announce("Selected in output " + side + ": “" + pane.text.slice(start, end) + "”. Press h to flag it.");
  }
  function kbdMove(side, key, shift) {
    var list = words(panes[side].text);
    if (!list.length) { return false; }
    var cur = kbd[side];
    var i;
    if (!cur) {
      var first = key === "ArrowLeft" ? list[list.length - 1] : list[0];
      kbdSelect(side, first[0], first[1]);
      return true;
    }
    if (shift && key === "ArrowRight") {
      for (i = 0; i < list.length; i++) { if (list[i][0] >= cur[1]) { kbdSelect(side, cur[0], list[i][1]); return true; } }
      return true;
    }
    if (shift && key === "ArrowLeft") {
      for (i = list.length - 1; i >= 0; i--) { if (list[i][1] < cur[1] && list[i][1] > cur[0]) { kbdSelect(side, cur[0], list[i][1]); return true; } }
      return true;
    }
    if (key === "ArrowRight") {
      for (i = 0; i < list.length; i++) { if (list[i][0] >= cur[1]) { kbdSelect(side, list[i][0], list[i][1]); return true; } }
      return true;
    }
    for (i = list.length - 1; i >= 0; i--) { if (list[i][1] <= cur[0]) { kbdSelect(side, list[i][0], list[i][1]); return true; } }
    return true;
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
      var snapped = snap(pane.text, start, end);
      if (snapped[1] > snapped[0]) { return { side: sides[k], start: snapped[0], end: snapped[1] }; }
    }
    return null;
  }
  function saveSpans(side) {
    var input = document.getElementById("spans-input-" + side);
    if (input) { input.value = JSON.stringify(panes[side].spans.map(function (s) { return { start: s.start, end: s.end }; })); }
    listSpans(side);
    draw(side);
    saveDraft();
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
      delete kbd[span.side];
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
    clearDraft();
    writeLock(true);
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
    if (locked) { return; }
    var pre = t && t.closest ? t.closest("pre.output") : null;
    if (pre && (e.key === "ArrowRight" || e.key === "ArrowLeft") && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (kbdMove(pre.getAttribute("data-side"), e.key, e.shiftKey)) { e.preventDefault(); }
      return;
    }
    if (pre && e.key === "Escape" && kbd[pre.getAttribute("data-side")]) {
      delete kbd[pre.getAttribute("data-side")];
      window.getSelection().removeAllRanges();
      e.preventDefault();
      return;
    }
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
    else if (metScale && (key === "y" || key === "p" || key === "n")) { handled = met({ y: "2", p: "1", n: "0" }[key]); }
    else if (key === "x") { handled = prefer("both_bad"); }
    else if (key === "h") { handled = flag(null); }
    else if (key === "d" && diffToggle) { diffToggle.checked = !diffToggle.checked; diffToggle.dispatchEvent(new Event("change")); handled = true; }
    else if (key === "r") { var r = document.getElementById("rationale"); if (r) { r.focus(); handled = true; } }
    else if (key === "s" && skip) { skip.open = true; skip.querySelector("input[type=radio]").focus(); handled = true; }
    else if (key === "?") { toggleHelp(); handled = true; }
    else if (key === "Enter" && t && t.tagName === "INPUT") { submit(); handled = true; }
    if (handled) { e.preventDefault(); }
  });

  /* --- drafts: every answer is kept in this browser until the rating is sent --------------------- */
  var draftKey = form.getAttribute("data-draft-key");
  var taskId = form.getAttribute("data-task");
  var restoring = false;
  function store() { try { return window.localStorage; } catch (e) { return null; } }
  function draftState() {
    var fields = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrfmiddlewaretoken" || el.name === "time_on_task_ms") { return; }
      if (el.type === "radio") { if (el.checked) { fields[el.name] = el.value; } }
      else if (el.type === "checkbox") { fields[el.name] = el.checked; }
      else { fields[el.name] = el.value; }
    });
    return fields;
  }
  function saveDraft() {
    var ls = store();
    if (!ls || !draftKey || restoring || locked) { return; }
    try { ls.setItem(draftKey, JSON.stringify({ saved: Date.now(), fields: draftState() })); } catch (e) { /* full: the form still works */ }
  }
  function clearDraft() { var ls = store(); if (ls && draftKey) { ls.removeItem(draftKey); } }
  function restoreDraft() {
    var ls = store();
    var raw = ls && draftKey ? ls.getItem(draftKey) : null;
    if (!raw) { return false; }
    var draft;
    try { draft = JSON.parse(raw); } catch (e) { return false; }
    var fields = (draft && draft.fields) || {};
    restoring = true;
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || !Object.prototype.hasOwnProperty.call(fields, el.name)) { return; }
      var value = fields[el.name];
      if (el.type === "radio") { el.checked = el.value === value; }
      else if (el.type === "checkbox") { el.checked = !!value; }
      else { el.value = value; }
    });
    Object.keys(panes).forEach(function (side) {
      var input = document.getElementById("spans-input-" + side);
      try { panes[side].spans = JSON.parse(input ? input.value || "[]" : "[]"); } catch (e) { panes[side].spans = []; }
      listSpans(side);
      draw(side);
    });
    scales.forEach(showAnchor);
    setCurrent(firstUnanswered());
    restoring = false;
    return true;
  }
  form.addEventListener("input", saveDraft);
  form.addEventListener("change", saveDraft);
  var skipForm = skip ? skip.querySelector("form") : null;
  if (skipForm) { skipForm.addEventListener("submit", clearDraft); }
  (function prune() {  // drafts of tasks left unrated for a week are dropped
    var ls = store();
    if (!ls) { return; }
    for (var i = ls.length - 1; i >= 0; i--) {
      var key = ls.key(i);
      if (key && key.indexOf("evalhub-lock:") === 0) {  // locks of tasks long gone
        try { if (Date.now() - JSON.parse(ls.getItem(key)).beat > 864e5) { ls.removeItem(key); } } catch (e) { ls.removeItem(key); }
        continue;
      }
      if (!key || key.indexOf("evalhub-draft:") !== 0 || key === draftKey) { continue; }
      try { if (Date.now() - JSON.parse(ls.getItem(key)).saved > 7 * 864e5) { ls.removeItem(key); } } catch (e) { ls.removeItem(key); }
    }
  })();

  /* --- one tab per task: a lock in localStorage, refreshed while the tab is open ----------------- */
  // The server hands a rater's second tab the same leased task (one live lease per rater), so the
  // browser makes sure only one tab edits it: the others say so before anything can be typed.
  // The tab's id lives in sessionStorage, so a reload (a refused submit shown again) is the same tab.
  var lockKey = "evalhub-lock:" + taskId;
  var locked = false;
  var tabNotice = document.getElementById("tab-notice");
  function newTabId() { return Math.random().toString(36).slice(2) + Date.now().toString(36); }
  var tabId = null;
  try { tabId = window.sessionStorage.getItem("evalhub-tab"); } catch (e) { tabId = null; }
  function keepTabId(id) { tabId = id; try { window.sessionStorage.setItem("evalhub-tab", id); } catch (e) { /* private mode */ } }
  function readLock() { var ls = store(); try { return ls ? JSON.parse(ls.getItem(lockKey) || "null") : null; } catch (e) { return null; } }
  function writeLock(done) { var ls = store(); if (ls) { ls.setItem(lockKey, JSON.stringify({ tab: tabId, beat: Date.now(), done: !!done })); } }
  function fresh(l) { return Date.now() - l.beat < 5000; }
  function heldElsewhere() { var l = readLock(); return !!(l && l.tab !== tabId && (l.done || fresh(l))); }
  (function () {
    var l = readLock();
    // A duplicated tab copies sessionStorage: a live lock under our own id is another tab's.
    if (!tabId || (l && l.tab === tabId && !l.done && fresh(l))) { keepTabId(newTabId()); }
  })();
  function lockHere() {
    locked = true;
    form.inert = true;
    if (skip) { skip.inert = true; }
    if (tabNotice) {
      var l = readLock();
      tabNotice.querySelector("p").textContent = l && l.done
        ? "This task was rated in another tab or window. Reload for your next task."
        : "This task is open in another tab or window. Rate it there; this copy is locked so that no work is lost. Your draft is kept in this browser either way.";
      document.getElementById("take-here").hidden = !!(l && l.done);
      tabNotice.hidden = false;
    }
  }
  function unlockHere() {
    writeLock();
    locked = false;
    form.inert = false;
    if (skip) { skip.inert = false; }
    if (tabNotice) { tabNotice.hidden = true; }
    if (restoreDraft()) { announce("Your draft from the other tab is here."); }
  }
  if (heldElsewhere()) { lockHere(); } else { writeLock(); }
  window.setInterval(function () {
    if (locked) { if (!heldElsewhere()) { unlockHere(); } return; }
    var l = readLock();
    if (l && l.tab !== tabId) { saveDraft(); lockHere(); } else if (!(l && l.done)) { writeLock(); }
  }, 1500);
  window.addEventListener("storage", function (e) {
    if (e.key !== lockKey) { return; }
    var l = readLock();
    if (l && l.tab !== tabId && (!locked || l.done)) { lockHere(); }  // taken over, or rated, in another tab
    else if (locked && !l) { unlockHere(); }  // the other tab was closed or sent its rating
  });
  window.addEventListener("pagehide", function () { var l = readLock(); if (l && l.tab === tabId && !l.done) { store().removeItem(lockKey); } });
  var takeHere = document.getElementById("take-here");
  if (takeHere) { takeHere.addEventListener("click", unlockHere); }

  if (!locked && !form.hasAttribute("data-server-entries") && restoreDraft()) {
    announce("Your unsent answers to this task were restored.");
  }

  var formError = document.getElementById("form-error");
  if (formError) { formError.focus(); }
  document.documentElement.setAttribute("data-rate-ready", "1");
})();
