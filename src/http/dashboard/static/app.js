// Inlet dashboard: small progressive enhancements. Every page works without
// this file; it adds the live tail, copy buttons, delete confirmations and
// live replay progress, and hides a logged-in page the browser restores
// from its back/forward cache once the session has ended.
"use strict";

window.addEventListener("pageshow", recheckRestoredPage);

document.addEventListener("DOMContentLoaded", function () {
  liveTail();
  copyButtons();
  confirmForms();
  replayProgress();
});

// Prepends new events to the table as the server reports them. Rows arrive
// rendered (and escaped) by the server, so nothing here builds HTML.
function liveTail() {
  var table = document.getElementById("events");
  if (!table || !table.dataset.stream || !window.EventSource) return;
  var body = table.tBodies[0];
  var live = document.getElementById("live");
  var source = new EventSource(table.dataset.stream);
  source.addEventListener("open", function () { if (live) live.hidden = false; });
  source.addEventListener("error", function () { if (live) live.hidden = true; });
  // The server ends the stream when the session ends: stop reconnecting.
  source.addEventListener("end", function () {
    source.close();
    if (live) live.hidden = true;
  });
  source.addEventListener("event", function (message) {
    var data;
    try { data = JSON.parse(message.data); } catch (e) { return; }
    if (!data.row || body.querySelector('tr[data-id="' + CSS.escape(String(data.id)) + '"]')) return;
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    var holder = document.createElement("tbody");
    holder.innerHTML = data.row;
    var row = holder.firstElementChild;
    if (!row) return;
    row.classList.add("new");
    body.insertBefore(row, body.firstChild);
  });
}

function copyButtons() {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.querySelector(button.dataset.copy);
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      target.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(target.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
}

function confirmForms() {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// While a replay runs, polls its progress and the counts on the source page.
// Without JS a reload shows the same text.
function replayProgress() {
  var section = document.getElementById("replay");
  var progress = document.getElementById("replay-progress");
  if (!section || !progress || !section.dataset.poll || !window.fetch) return;
  if (!progress.dataset.running) return;
  var poll = function () {
    fetch(section.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        if (data.replay) progress.textContent = data.replay.text;
        ["failed", "unmapped"].forEach(function (k) {
          var el = section.querySelector('[data-count="' + k + '"]');
          if (el && data.counts) el.textContent = String(data.counts[k]);
        });
        if (data.replay && !data.replay.finished) {
          window.setTimeout(poll, 1000);
        } else {
          delete progress.dataset.running;
          progress.dataset.finished = "1";
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  };
  window.setTimeout(poll, 500);
}

// A page restored from the back/forward cache was not asked of the server,
// so neither the login check nor `Cache-Control: no-store` saw it. Before it
// shows again, ask the server whether the session still lives; if not, put
// the login in its place (history keeps no copy: `replace`). No `unload`
// handler: that is deprecated and keeps pages out of the cache only in some
// browsers. Logout also sends `Clear-Site-Data: "cache"`, which empties the
// cache in browsers that honour it; this covers the rest.
function recheckRestoredPage(event) {
  if (!event.persisted || !document.querySelector("form.logout")) return;
  var root = document.documentElement;
  root.classList.add("rechecking");
  var toLogin = function () {
    var next = location.pathname + location.search;
    location.replace(next === "/" ? "/login" : "/login?next=" + encodeURIComponent(next));
  };
  if (!window.fetch) { toLogin(); return; }
  fetch("/session", { credentials: "same-origin", cache: "no-store" })
    .then(function (r) {
      if (r.status === 204) root.classList.remove("rechecking");
      else toLogin();
    })
    .catch(toLogin);
}
