// Resident probe columns of the overview matrix, kept live.
// Cells: <td id="r-<probe>-<cluster>" class="rcell res-<up|down|firing|stale|nodata>"
// data-alert="<alert state>"><a title>availability</a></td>, drawn by the server
// (apps/dashboard/resident_html.py, the ?render=table page) or by grid.js (the
// overview: only rows in view are in the DOM, so updates go to window.kubeprobeGrid's
// model, which redraws the cell if it is drawn). live.js re-dispatches every socket frame as a
// "kubeprobe:frame" event; here:
// - "rcell" {probe_id, cluster_id, state}: the newest window's state, pushed when it
//   changes (or after a quiet minute): the cell turns up/down at once, unless a
//   resident alert fires on it (red until the alert says otherwise);
// - "cells" naming a resident probe's alert case (th[data-alert-case]): its alert
//   changed, so the numbers are fetched again;
// - "subscribed" (each (re)connection), and every 30 s: /dashboard/state.json?part=resident
//   gives every cell's state, availability and p99, which also greys out cells that went
//   stale without any push.
(function () {
  "use strict";
  var REFRESH_EVERY = 30000;
  var SOON = 1000;
  var STATES = /(^|\s)res-(up|down|firing|stale|nodata)(?=\s|$)/;
  var _ = window.gettext || function (s) { return s; };
  var fill = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (m, key) { return obj[key]; });
  };
  var pgettext = window.pgettext || function (context, s) { return s; };
  var WORDS = {
    up: pgettext("resident state", "up"), down: _("down (the newest window failed)"),
    firing: _("alert firing"), stale: _("stale: no samples for 5 min"), nodata: _("no samples yet")
  };
  var grid = window.kubeprobeGrid;  // the overview's grid (grid.js), loaded before this script
  var names = {};  // probe id -> name
  var alertCases = {};  // alert case id -> probe id

  // The columns shown: the grid's (they change when grid.json is read again), else the table's.
  function scan() {
    names = {};
    alertCases = {};
    if (grid) {
      grid.residentColumns().forEach(function (col) {
        names[col[0]] = col[1];
        if (col[2] != null) alertCases[col[2]] = String(col[0]);
      });
      return;
    }
    document.querySelectorAll("th.resident[data-resident]").forEach(function (th) {
      names[th.dataset.resident] = (th.textContent || "").replace(/^\s*\u25c9\s*/, "").trim();
      if (th.dataset.alertCase) alertCases[th.dataset.alertCase] = th.dataset.resident;
    });
  }
  scan();
  if (!grid && !Object.keys(names).length) return;
  document.addEventListener("kubeprobe:grid", scan);

  // The same text as the server: never "100" unless every sample succeeded.
  function availabilityText(value) {
    if (value == null) return "\u2013";
    return value >= 100 ? "100" : Math.min(value, 99.9).toFixed(1);
  }

  function title(probe, cell) {
    var parts = [probe + ": " + (WORDS[cell.state] || cell.state)];
    if (cell.availability != null) parts.push(fill(_("%(share)s ok over 5 min"), {share: cell.availability.toFixed(2) + " %"}, true));
    if (cell.p99_ms != null) parts.push("p99 " + cell.p99_ms.toFixed(1) + " ms");
    if (cell.alert_state && cell.alert_state !== "ok" && cell.alert_state !== "firing") {
      parts.push(_("alert") + " " + cell.alert_state);
    }
    return parts.join(" \u00b7 ");
  }

  function setState(td, state) {
    var className = td.className.replace(STATES, "$1res-" + state);
    if (className !== td.className) td.className = className;
  }

  function patch(cell) {  // a full cell from state.json
    if (grid && grid.resident(cell, false)) return;
    var td = document.getElementById("r-" + cell.probe_id + "-" + cell.cluster_id);
    if (!td) return;
    setState(td, cell.state);
    td.dataset.alert = cell.alert_state || "ok";
    var link = td.querySelector("a");
    if (!link) return;
    link.textContent = availabilityText(cell.availability);
    link.title = title(names[cell.probe_id] || "", cell);
  }

  function pushed(msg) {  // only the newest window's state
    if (grid && grid.resident(msg, true)) { refreshSoon(); return; }
    var td = document.getElementById("r-" + msg.probe_id + "-" + msg.cluster_id);
    if (!td || td.dataset.alert === "firing") return;
    setState(td, msg.state === "down" ? "down" : "up");
    refreshSoon();  // the availability moved too
  }

  var busy = false;
  var again = false;
  var soonTimer = null;

  function refresh() {
    if (!Object.keys(names).length) return;  // no resident columns (yet): grid.json brings them
    if (busy) { again = true; return; }
    busy = true;
    fetch("/dashboard/state.json?scope=overview&part=resident", {
      credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (state) { (state.resident || []).forEach(patch); })
      .catch(function (e) { console.warn("resident: refresh", e); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function refreshSoon() {
    if (soonTimer) return;  // a burst of pushes: one fetch
    soonTimer = setTimeout(function () { soonTimer = null; refresh(); }, SOON);
  }

  document.addEventListener("kubeprobe:frame", function (event) {
    var msg = event.detail || {};
    if (msg.type === "rcell") {
      pushed(msg);
    } else if (msg.type === "subscribed") {
      refresh();
    } else if (msg.type === "cells") {
      var cells = msg.cells || [];
      for (var i = 0; i < cells.length; i++) {
        if (alertCases[cells[i].case_id]) { refreshSoon(); break; }
      }
    }
  });
  setInterval(refresh, REFRESH_EVERY);
})();
