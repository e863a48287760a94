/* KubeProbe live updates: subscribe to the page's scope over ws/live/ and patch
 * what changed. Protocol: apps/dashboard/consumers.py.
 *
 * - <body data-live-scope="overview|alerts|cluster:<id>|case:<id>|run:<id>">
 * - matrix cells <td id="c-<case>-<cluster>" class="cell run-<state> alert-<state>"
 *   data-severity data-run><a href="/dashboard/runs/<id>/"></a></td>; cells not on
 *   the page are ignored (the overview may be filtered)
 * - counters <span data-counter="firing-critical|firing-warning|firing-info">
 * - run page <div id="run-detail">, refetched from ?fragment=1
 * - alerts and inbox pages (scope "alerts") <div id="alerts-live">, refetched from
 *   ?fragment=1 when cells change, and once more a few seconds later for the
 *   notification that follows a flip; never while one of its forms is open
 * - incident pages (scope incidents | incident:<id>): <div data-live-fragment="URL">,
 *   refetched when an "incident" frame names it
 * - <span id="live-status"> shows connecting / live / reconnecting / signed out
 *
 * Updates are applied in one requestAnimationFrame per batch; after every
 * (re)connection the page re-syncs from /dashboard/state.json, so nothing is
 * lost while the socket was down and no reload is needed.
 */
(function () {
  "use strict";

  // Django's JavaScript catalog (/jsi18n/, loaded by base.html); English without it.
  var _ = window.gettext || function (s) { return s; };
  var fill = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (m, k) { return obj[k]; });
  };
  var body = document.body;
  var scope = body && body.dataset.liveScope;
  if (!scope || !("WebSocket" in window)) return;

  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var PING_EVERY = 25000;
  var CLOSE_UNAUTHENTICATED = 4401;
  var CLOSE_FORBIDDEN = 4403;

  var runMatch = /^run:(\d+)$/.exec(scope);
  var runId = runMatch ? Number(runMatch[1]) : null;
  var pending = new Map(); // "case-cluster" -> merged cell, until the next frame
  var frameRequested = false;
  var socket = null;
  var delay = MIN_DELAY;
  var reconnectTimer = null;
  var pingTimer = null;
  var stopped = false;

  // ------------------------------------------------------------ status

  function setStatus(state, text) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text || state;
    el.className = el.className.replace(/\blive-status-\S+/g, "").trim() + " live-status-" + state.replace(/\s+/g, "-");
  }

  // ------------------------------------------------------------ cells

  function queueCells(cells) {
    for (var i = 0; i < cells.length; i++) {
      var cell = cells[i];
      var key = cell.case_id + "-" + cell.cluster_id;
      var earlier = pending.get(key);
      // Field by field, as the server does: a "running" update carries no
      // alert state and must not erase one still waiting to be drawn.
      pending.set(key, earlier ? Object.assign(earlier, cell) : Object.assign({}, cell));
    }
    if (!frameRequested) {
      frameRequested = true;
      window.requestAnimationFrame(flushCells);
    }
  }

  function flushCells() {
    frameRequested = false;
    var changed = false;
    var grid = window.kubeprobeGrid;
    if (grid) {
      // The overview's grid (grid.js): most cells are not in the DOM, the model has them all.
      changed = grid.apply(Array.from(pending.values()));
    } else {
      pending.forEach(function (cell) {
        if (patchCell(cell)) changed = true;
      });
    }
    applied += pending.size;
    pending.clear();
    if (changed) recount();
  }
  var applied = 0; // cells applied since the page opened (read by the browser benchmark)
  window.kubeprobeLive = { applied: function () { return applied; } };

  function replacePrefixed(classes, prefix, value) {
    var out = classes.filter(function (c) { return c.indexOf(prefix) !== 0; });
    out.push(prefix + value);
    return out;
  }

  function patchCell(cell) {
    var td = document.getElementById("c-" + cell.case_id + "-" + cell.cluster_id);
    if (!td) return false;
    var classes = td.className.split(/\s+/).filter(Boolean);
    if (cell.run_state != null) classes = replacePrefixed(classes, "run-", cell.run_state || "none");
    // Absent alert_state (a run dispatched or started): keep the alert class shown.
    if (cell.alert_state != null) classes = replacePrefixed(classes, "alert-", cell.alert_state || "ok");
    var className = classes.join(" ");
    var changed = false;
    if (td.className !== className) { td.className = className; changed = true; }
    if (cell.severity != null && td.dataset.severity !== cell.severity) {
      td.dataset.severity = cell.severity;
      changed = true;
    }
    if ("run_id" in cell) {
      var run = cell.run_id == null ? "" : String(cell.run_id);
      if (td.dataset.run !== run) { td.dataset.run = run; changed = true; }
    }
    if (changed) drawInside(td);
    return changed;
  }

  // The same symbol and title as the server draws (apps/dashboard/templatetags/dashboard.py),
  // so a patched cell looks exactly like a freshly rendered one.
  var RUN_SYMBOLS = {
    succeeded: "\u2713", failed: "\u2717", error: "!", timed_out: "\u25d4",
    running: "\u2026", dispatched: "\u2026", pending: "\u2026"
  };
  var RUN_WORDS = {
    timed_out: _("timed out"), none: _("no result yet"), pending: _("pending"),
    dispatched: _("dispatched"), running: _("running"), succeeded: _("succeeded"),
    failed: _("failed"), error: _("error")
  };
  var STATE_WORDS = {
    firing: _("firing"), acknowledged: _("acknowledged"), silenced: _("silenced"),
    critical: _("critical"), warning: _("warning"), info: _("info")
  };

  function drawInside(td) {
    var runState = (/(?:^|\s)run-(\S+)/.exec(td.className) || [null, "none"])[1];
    var alertState = (/(?:^|\s)alert-(\S+)/.exec(td.className) || [null, "ok"])[1];
    var words = RUN_WORDS[runState] || runState;
    var severity = td.dataset.severity || "";
    var title = alertState === "ok" ? words :
      fill(_("%(run)s; alert %(alert)s (%(severity)s)"), {
        run: words, alert: STATE_WORDS[alertState] || alertState, severity: STATE_WORDS[severity] || severity
      }, true);
    var symbol = RUN_SYMBOLS[runState] || (alertState !== "ok" ? "\u00b7" : "");
    var run = td.dataset.run;
    var inner = td.firstElementChild;
    var tag = run ? "A" : (symbol ? "SPAN" : null);
    if (!tag) { td.textContent = ""; return; }
    if (!inner || inner.tagName !== tag) {
      inner = document.createElement(tag);
      td.textContent = "";
      td.appendChild(inner);
    }
    if (run) inner.setAttribute("href", "/dashboard/runs/" + run + "/");
    inner.title = title;
    inner.textContent = symbol;
  }

  function recount() {
    var counters = document.querySelectorAll("[data-counter]");
    if (!counters.length) return;
    var counts = {};
    if (window.kubeprobeGrid) {
      var model = window.kubeprobeGrid.counts();
      Object.keys(model).forEach(function (sev) { counts["firing-" + sev] = model[sev]; });
    } else {
      var firing = document.querySelectorAll("td.cell.alert-firing");
      for (var i = 0; i < firing.length; i++) {
        var key = "firing-" + (firing[i].dataset.severity || "");
        counts[key] = (counts[key] || 0) + 1;
      }
    }
    for (var j = 0; j < counters.length; j++) {
      var value = String(counts[counters[j].dataset.counter] || 0);
      if (counters[j].textContent !== value) counters[j].textContent = value;
    }
  }

  // ------------------------------------------------------------ run page

  var fragmentBusy = false;
  var fragmentAgain = false;

  function refetchRun() {
    var detail = document.getElementById("run-detail");
    if (!detail || runId == null) return;
    if (fragmentBusy) { fragmentAgain = true; return; } // one fetch at a time, then once more
    fragmentBusy = true;
    fetch("/dashboard/runs/" + runId + "/?fragment=1", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { detail.innerHTML = html; })
      .catch(function (e) { console.warn("live: run fragment", e); })
      .then(function () {
        fragmentBusy = false;
        if (fragmentAgain) { fragmentAgain = false; refetchRun(); }
      });
  }

  // ------------------------------------------------------------ alerts and inbox

  var alertsBusy = false;
  var alertsAgain = false;
  var alertsLater = null;
  var AFTER_NOTIFY = 4000; // the alert group wait (1 s by default) plus the send

  function refetchAlerts() {
    var box = document.getElementById("alerts-live");
    if (!box) return;
    // An open Acknowledge/Silence form would lose what was typed: wait until it closes.
    if (box.querySelector("details[open]")) { alertsAgain = true; return; }
    if (alertsBusy) { alertsAgain = true; return; }
    alertsBusy = true;
    fetch(window.location.pathname + "?fragment=1", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        box.innerHTML = html;
        var counts = box.querySelector("[data-fragment-counts]");
        if (!counts) return;
        ["critical", "warning", "info"].forEach(function (sev) {
          var el = document.querySelector('[data-counter="firing-' + sev + '"]');
          if (el) el.textContent = counts.dataset[sev] || "0";
        });
      })
      .catch(function (e) { console.warn("live: alerts fragment", e); })
      .then(function () {
        alertsBusy = false;
        if (alertsAgain) { alertsAgain = false; refetchAlerts(); }
      });
  }

  function alertsChanged() {
    refetchAlerts();
    clearTimeout(alertsLater);
    alertsLater = setTimeout(refetchAlerts, AFTER_NOTIFY);
  }

  document.addEventListener("toggle", function (event) {
    if (alertsAgain && event.target.tagName === "DETAILS" && !event.target.open) {
      alertsAgain = false;
      refetchAlerts();
    }
  }, true);

  // Incident pages: <div data-live-fragment="URL"> is refetched when an incident changes.
  var incidentMatch = /^incident:(\d+)$/.exec(scope);
  var liveFragmentBusy = false;

  function refetchFragment() {
    var box = document.querySelector("[data-live-fragment]");
    if (!box || liveFragmentBusy) return;
    liveFragmentBusy = true;
    fetch(box.dataset.liveFragment, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { box.innerHTML = html; })
      .catch(function (e) { console.warn("live: fragment", e); })
      .then(function () { liveFragmentBusy = false; });
  }

  // ------------------------------------------------------------ resync

  // Cells pushed while a snapshot is in flight: the snapshot may have been read before
  // they happened, so they are applied again on top of it.
  var pushedDuringResync = null;

  function resync() {
    if (runId != null) { refetchRun(); return; }
    if (scope === "alerts") { refetchAlerts(); return; }
    if (document.querySelector("[data-live-fragment]")) { refetchFragment(); return; }
    if (window.kubeprobeGrid) {
      // The grid reloads its snapshot (grid.json), read after the subscription.
      pushedDuringResync = [];
      window.kubeprobeGrid.load()
        .then(function () { queueCells(pushedDuringResync || []); })
        .then(function () { pushedDuringResync = null; });
      return;
    }
    if (!document.querySelector("td.cell")) return;  // no matrix on this page
    var query = window.location.search.replace(/^\?/, "");
    var url = "/dashboard/state.json?scope=" + encodeURIComponent(scope) + (query ? "&" + query : "");
    pushedDuringResync = [];
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (state) {
        queueCells(state.cells || []);
        queueCells(pushedDuringResync || []);
      })
      .catch(function (e) { console.warn("live: resync", e); })
      .then(function () { pushedDuringResync = null; });
  }

  // ------------------------------------------------------------ socket

  function onMessage(event) {
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    // Every frame, for page scripts of their own (resident-matrix.js: "rcell", ...).
    document.dispatchEvent(new CustomEvent("kubeprobe:frame", { detail: msg }));
    switch (msg.type) {
      case "cells":
        queueCells(msg.cells || []);
        if (scope === "alerts") alertsChanged();
        if (pushedDuringResync) pushedDuringResync.push.apply(pushedDuringResync, msg.cells || []);
        break;
      case "run":
        if (msg.run_id === runId) refetchRun();
        break;
      case "incident":
        if (scope === "incidents" || (incidentMatch && Number(incidentMatch[1]) === msg.incident_id)) {
          refetchFragment();
        }
        break;
      case "subscribed":
        delay = MIN_DELAY;
        setStatus("live", _("live"));
        // Also on the first connection: changes between rendering the page and
        // subscribing would otherwise stay unseen until the cell changes again.
        resync();
        break;
      case "samples":  // a resident probe's batch: its page draws it (resident.js)
        document.dispatchEvent(new CustomEvent("kubeprobe:samples", { detail: msg }));
        break;
      case "error":
        console.warn("live:", msg.detail);
        break;
    }
  }

  function connect() {
    reconnectTimer = null;
    var proto = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(proto + window.location.host + "/ws/live/");
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "subscribe", scope: scope }));
      clearInterval(pingTimer);
      pingTimer = setInterval(function () {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send('{"type":"ping"}');
      }, PING_EVERY);
    };
    socket.onmessage = onMessage;
    socket.onclose = function (event) {
      clearInterval(pingTimer);
      socket = null;
      if (stopped) return;
      if (event.code === CLOSE_UNAUTHENTICATED || event.code === CLOSE_FORBIDDEN) {
        setStatus("signed out", _("signed out: reload to log in"));
        return; // retrying cannot help until the user logs in again
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    setStatus("reconnecting", _("reconnecting"));
    // Full jitter: a server restart must not bring every page back at the same instant.
    var wait = Math.min(MAX_DELAY, delay) * (0.5 + Math.random() * 0.5);
    delay = Math.min(MAX_DELAY, delay * 2);
    reconnectTimer = setTimeout(connect, wait);
  }

  // Back online or back in view: reconnect now instead of waiting out the backoff.
  function reconnectSoon() {
    if (socket || stopped || !reconnectTimer) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    delay = MIN_DELAY;
    connect();
  }
  window.addEventListener("online", reconnectSoon);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") reconnectSoon();
  });
  window.addEventListener("pagehide", function () {
    stopped = true;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket) socket.close(1000);
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return; // restored from the back/forward cache: live again
    stopped = false;
    delay = MIN_DELAY;
    if (!socket) connect();
  });

  document.addEventListener("kubeprobe:counts", recount);

  setStatus("connecting", _("connecting"));
  connect();
})();
