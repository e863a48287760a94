/* KubeProbe overview matrix, drawn in the browser from /dashboard/grid.json.
 *
 * 10,000 clusters × 20 cases are 200,000 cells: as HTML, 33 MB and seconds to
 * lay out. Here the cells live in typed arrays and only the rows in view (plus
 * a margin) are in the DOM, as the same <td id="c-<case>-<cluster>" class="cell
 * run-<state> alert-<state>" data-severity data-run><a href title>symbol</a></td>
 * the server draws on the cluster and case pages; scrolling redraws the window.
 *
 * grid.json (apps/dashboard/selectors/grid.py, grid_json): cases [[id, name]],
 * sections [[title, rows]], a row [cluster_id, name, title, codes, runs,
 * unreachable|null]; codes are three characters per cell (run, alert, severity),
 * runs a comma-separated list of run ids.
 *
 * Resident probes (grid.json "resident": columns [[probe_id, name, alert_case_id]],
 * cells [[probe_id, cluster_id, state, availability, p99_ms, alert_state]]) are
 * columns after the cases, drawn as apps/dashboard/resident_html.py draws them:
 * <td id="r-<probe>-<cluster>" class="rcell res-<state>" data-alert>; resident-matrix.js
 * keeps them live through resident() below.
 *
 * Words come from Django's JavaScript catalog (/jsi18n/), English without it.
 *
 * window.kubeprobeGrid is what live.js calls: load() (re)reads grid.json;
 * apply(cells) writes pushed cells into the model and the visible DOM and
 * returns whether anything changed; counts() gives firing alerts by severity.
 * live.js loads once its socket is subscribed (so nothing changes unseen between
 * the snapshot and the subscription); without a socket the grid loads itself.
 * When the matrix is ready to click, performance.mark("matrix-ready") is set.
 */
(function () {
  "use strict";

  var wrap = document.getElementById("grid");
  if (!wrap) return;
  var _ = window.gettext || function (s) { return s; };
  var pgettext = window.pgettext || function (context, s) { return s; };
  var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
  var fill = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (m, k) { return obj[k]; });
  };
  var table = wrap.querySelector("table");
  var thead = table.tHead;
  var tbody = table.tBodies[0];
  var summary = document.getElementById("grid-summary");
  var empty = document.getElementById("grid-empty");

  function prefix(value, tail) { return value.slice(0, value.length - tail.length); }
  var RUN_PREFIX = prefix(wrap.dataset.runPrefix, "0/");
  var CLUSTER_PREFIX = prefix(wrap.dataset.clusterPrefix, "x/");
  var CASE_PREFIX = prefix(wrap.dataset.casePrefix, "x/");
  var RESIDENT_PREFIX = prefix(wrap.dataset.residentPrefix || "x/", "x/");
  var legend = document.getElementById("resident-legend");

  // The codes of grid.py and the words and symbols of templatetags/dashboard.py.
  var RUN_BY_CODE = { S: "succeeded", F: "failed", E: "error", T: "timed_out", R: "running",
    D: "dispatched", P: "pending", "-": "none", u: "unscheduled" };
  var ALERT_BY_CODE = { o: "ok", f: "firing", a: "acknowledged", s: "silenced", "-": "ok" };
  var SEVERITY_BY_CODE = { c: "critical", w: "warning", i: "info", "-": "" };
  var RUN_SYMBOLS = { succeeded: "\u2713", failed: "\u2717", error: "!", timed_out: "\u25d4",
    running: "\u2026", dispatched: "\u2026", pending: "\u2026" };
  var RUN_WORDS = {
    timed_out: _("timed out"), none: _("no result yet"), pending: _("pending"),
    dispatched: _("dispatched"), running: _("running"), succeeded: _("succeeded"),
    failed: _("failed"), error: _("error")
  };
  var STATE_WORDS = {
    firing: _("firing"), acknowledged: _("acknowledged"), silenced: _("silenced"),
    critical: _("critical"), warning: _("warning"), info: _("info")
  };
  var NOT_SCHEDULED = escapeHtml(_("not scheduled here"));
  var RESIDENT_WORDS = {
    up: pgettext("resident state", "up"), down: _("down (the newest window failed)"),
    firing: _("alert firing"), stale: _("stale: no samples for 5 min"), nodata: _("no samples yet")
  };
  var RUNS = [], ALERTS = [], SEVERITIES = [];
  var runIndex = {}, alertIndex = {}, severityIndex = {};
  function table_(byCode, list, index) {
    Object.keys(byCode).forEach(function (code) {
      var value = byCode[code];
      if (!(value in index)) { index[value] = list.length; list.push(value); }
    });
  }
  table_(RUN_BY_CODE, RUNS, runIndex);
  table_(ALERT_BY_CODE, ALERTS, alertIndex);
  table_(SEVERITY_BY_CODE, SEVERITIES, severityIndex);

  var OVERSCAN = 15; // rows drawn above and below the view
  var pitch = 26;    // px from one row to the next; measured after the first draw

  // The model.
  var cases = [];         // [id, name]
  var colOf = new Map();  // case id -> column
  var rowOf = new Map();  // cluster id -> row
  var rows = [];          // [cluster_id, name, title, unreachable]
  var lines = [];         // a section head: -(section + 1); a cluster: its row index
  var lineOf = [];        // row -> line
  var sections = [];      // [title, count]
  var run, alert, severity, runId; // per cell: row * columns + column
  var firing = { critical: 0, warning: 0, info: 0 };
  var ready = false;
  var drawn = [0, 0];     // lines [first, last) in the DOM
  var loading = null;
  var resCols = [];         // [probe_id, name, alert_case_id]
  var resCells = new Map(); // "probe-cluster" -> {state, availability, p99_ms, alert_state}

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function decode(data) {
    cases = data.cases;
    colOf = new Map();
    cases.forEach(function (c, i) { colOf.set(c[0], i); });
    var total = data.rows, width = cases.length;
    run = new Uint8Array(total * width);
    alert = new Uint8Array(total * width);
    severity = new Uint8Array(total * width);
    runId = new Float64Array(total * width);
    rows = []; lines = []; lineOf = []; sections = []; rowOf = new Map();
    firing = { critical: 0, warning: 0, info: 0 };
    data.sections.forEach(function (section, s) {
      sections.push([section[0], section[1].length]);
      lines.push(-(s + 1));
      section[1].forEach(function (r) {
        var index = rows.length, base = index * width, codes = r[3], ids = r[4].split(",");
        rows.push([r[0], r[1], r[2], r[5]]);
        rowOf.set(r[0], index);
        lineOf.push(lines.length);
        lines.push(index);
        for (var c = 0; c < width; c++) {
          var at = 3 * c;
          run[base + c] = runIndex[RUN_BY_CODE[codes[at]] || "none"];
          var a = alertIndex[ALERT_BY_CODE[codes[at + 1]] || "ok"];
          var sev = SEVERITY_BY_CODE[codes[at + 2]] || "";
          alert[base + c] = a;
          severity[base + c] = severityIndex[sev];
          runId[base + c] = ids[c] ? Number(ids[c]) : 0;
          if (ALERTS[a] === "firing" && sev in firing) firing[sev] += 1;
        }
      });
    });
    var resident = data.resident || { columns: [], cells: [] };
    resCols = resident.columns;
    resCells = new Map();
    resident.cells.forEach(function (c) {
      resCells.set(c[0] + "-" + c[1], { state: c[2], availability: c[3], p99_ms: c[4], alert_state: c[5] });
    });
    describe(data);
  }

  function describe(data) {
    var n = rows.length, m = cases.length, p = resCols.length;
    var text = fill(ngettext("%(clusters)s cluster", "%(clusters)s clusters", n), { clusters: n }, true) +
      " \u00d7 " + fill(ngettext("%(cases)s case", "%(cases)s cases", m), { cases: m }, true);
    if (p) {
      text += " + " + fill(ngettext("%(probes)s resident probe (\u25c9)", "%(probes)s resident probes (\u25c9)", p),
        { probes: p }, true);
    }
    summary.textContent = text;
    var other = data.unscheduled_cases;
    if (other) {
      var note = document.createElement("span");
      note.className = "note";
      note.id = "unscheduled-note";
      note.textContent = " \u00b7 " + fill(ngettext(
        "columns are the cases a binding runs on these clusters or that have results; %(others)s other enabled case is scheduled nowhere here (Columns: every enabled case shows it)",
        "columns are the cases a binding runs on these clusters or that have results; %(others)s other enabled cases are scheduled nowhere here (Columns: every enabled case shows them)",
        other), { others: other }, true);
      summary.appendChild(note);
    }
    if (legend) legend.hidden = p === 0;
    wrap.hidden = n === 0;
    empty.hidden = n !== 0;
    table.setAttribute("aria-rowcount", String(n + 1));
    table.setAttribute("aria-colcount", String(m + p + 1));
    var head = ['<tr aria-rowindex="1"><th class="corner" scope="col">' + escapeHtml(_("cluster")) + "</th>"];
    cases.forEach(function (c) {
      var name = escapeHtml(c[1]);
      head.push('<th scope="col" class="case" data-case="' + c[0] + '"><a href="' + CASE_PREFIX +
        encodeURIComponent(c[1]) + '/" title="' + name + '">' + name + "</a></th>");
    });
    resCols.forEach(function (col, k) {
      var name = escapeHtml(col[1]);
      var tip = fill(_("resident probe %(name)s: availability over the last 5 minutes per cluster"), { name: col[1] }, true);
      head.push('<th scope="col" class="case resident' + (k === 0 ? " res-first" : "") + '" data-resident="' + col[0] +
        '" data-alert-case="' + (col[2] == null ? "" : col[2]) + '"><a href="' + RESIDENT_PREFIX +
        encodeURIComponent(col[1]) + '/" title="' + escapeHtml(tip) + '">\u25c9 ' + name + "</a></th>");
    });
    head.push("</tr>");
    thead.innerHTML = head.join("");
  }

  // ------------------------------------------------------------ drawing

  function cellHtml(r, c) {
    var i = r * cases.length + c;
    var runState = RUNS[run[i]], alertState = ALERTS[alert[i]], sev = SEVERITIES[severity[i]];
    var id = "c-" + cases[c][0] + "-" + rows[r][0];
    if (runState === "unscheduled") {
      return '<td id="' + id + '" class="cell run-unscheduled alert-ok" data-severity="" data-run="">' +
        '<span title="' + NOT_SCHEDULED + '">\u2013</span></td>';
    }
    var words = RUN_WORDS[runState] || runState;
    var title = escapeHtml(alertState === "ok" ? words : fill(_("%(run)s; alert %(alert)s (%(severity)s)"), {
      run: words, alert: STATE_WORDS[alertState] || alertState, severity: STATE_WORDS[sev] || sev
    }, true));
    var symbol = RUN_SYMBOLS[runState] || (alertState !== "ok" ? "\u00b7" : "");
    var ids = runId[i] ? String(runId[i]) : "";
    var inner = ids ? '<a href="' + RUN_PREFIX + ids + '/" title="' + title + '">' + symbol + "</a>" :
      (symbol ? '<span title="' + title + '">' + symbol + "</span>" : "");
    return '<td id="' + id + '" class="cell run-' + runState + " alert-" + alertState +
      '" data-severity="' + sev + '" data-run="' + ids + '">' + inner + "</td>";
  }

  // The same text as the server (resident_html.py): never "100" unless every sample succeeded.
  function availabilityText(value) {
    if (value == null) return "\u2013";
    return value >= 100 ? "100" : Math.min(value, 99.9).toFixed(1);
  }

  function residentTitle(probe, cell) {
    var parts = [probe + ": " + (RESIDENT_WORDS[cell.state] || cell.state)];
    if (cell.availability != null) {
      parts.push(fill(_("%(share)s ok over 5 min"), { share: cell.availability.toFixed(2) + " %" }, true));
    }
    if (cell.p99_ms != null) parts.push("p99 " + cell.p99_ms.toFixed(1) + " ms");
    if (cell.alert_state && cell.alert_state !== "ok" && cell.alert_state !== "firing") {
      parts.push(_("alert") + " " + cell.alert_state);
    }
    return parts.join(" \u00b7 ");
  }

  function residentHtml(k, clusterId) {
    var col = resCols[k], first = k === 0 ? " res-first" : "";
    var cell = resCells.get(col[0] + "-" + clusterId);
    if (!cell) return '<td class="rcell res-none' + first + '"></td>';  // the probe does not run here
    return '<td id="r-' + col[0] + "-" + clusterId + '" class="rcell res-' + cell.state + first +
      '" data-alert="' + escapeHtml(cell.alert_state || "ok") + '"><a href="' + RESIDENT_PREFIX +
      encodeURIComponent(col[1]) + '/" title="' + escapeHtml(residentTitle(col[1], cell)) + '">' +
      availabilityText(cell.availability) + "</a></td>";
  }

  function lineHtml(line) {
    var index = lines[line];
    if (index < 0) {
      var section = sections[-index - 1];
      return '<tr class="section-head"><th colspan="' + (cases.length + resCols.length + 1) + '" scope="rowgroup">' +
        escapeHtml(section[0]) + " <small>" +
        escapeHtml(fill(ngettext("%(count)s cluster", "%(count)s clusters", section[1]), { count: section[1] }, true)) +
        "</small></th></tr>";
    }
    var row = rows[index], name = escapeHtml(row[1]);
    var out = ['<tr data-cluster="' + row[0] + '" aria-rowindex="' + (index + 2) + '">' +
      '<th scope="row" class="cluster"><a href="' + CLUSTER_PREFIX + encodeURIComponent(row[1]) +
      '/" title="' + escapeHtml(row[2]) + '">' + name + "</a>"];
    if (row[3]) {
      var when = '<time datetime="' + escapeHtml(row[3][0]) + '">' + escapeHtml(row[3][1]) + "</time>";
      out.push(' <span class="warn unreachable" title="' + escapeHtml(row[3][2]) + '">' +
        fill(escapeHtml(_("unreachable since %(when)s")), { when: when }, true) + "</span>");
    }
    out.push("</th>");
    for (var c = 0; c < cases.length; c++) out.push(cellHtml(index, c));
    for (var k = 0; k < resCols.length; k++) out.push(residentHtml(k, row[0]));
    out.push("</tr>");
    return out.join("");
  }

  function spacer(height) {
    return height > 0 ? '<tr class="spacer" aria-hidden="true"><td style="height:' + height + 'px"></td></tr>' : "";
  }

  function draw(force) {
    if (!ready) return;
    var top = Math.max(0, wrap.scrollTop - thead.offsetHeight);
    var first = Math.max(0, Math.floor(top / pitch) - OVERSCAN);
    var last = Math.min(lines.length, Math.ceil((top + wrap.clientHeight) / pitch) + OVERSCAN);
    if (!force && first === drawn[0] && last === drawn[1]) return;
    var focused = document.activeElement;
    var focusId = focused && wrap.contains(focused) && focused.parentNode && focused.parentNode.id;
    var html = [spacer(first * pitch)];
    for (var line = first; line < last; line++) html.push(lineHtml(line));
    html.push(spacer((lines.length - last) * pitch));
    tbody.innerHTML = html.join("");
    drawn = [first, last];
    if (focusId) {
      var again = document.getElementById(focusId);
      if (again && again.firstElementChild) again.firstElementChild.focus({ preventScroll: true });
    }
  }

  function measure() {
    var drawnRows = tbody.querySelectorAll("tr[data-cluster]");
    if (drawnRows.length < 2) return;
    var measured = (drawnRows[drawnRows.length - 1].offsetTop - drawnRows[0].offsetTop) / (drawnRows.length - 1);
    // Section heads sit in between; rows are what the spacers stand for.
    if (measured > 4 && Math.abs(measured - pitch) > 0.5) { pitch = measured; draw(true); }
  }

  var scrollQueued = false;
  wrap.addEventListener("scroll", function () {
    if (scrollQueued) return;
    scrollQueued = true;
    window.requestAnimationFrame(function () { scrollQueued = false; draw(false); });
  }, { passive: true });
  window.addEventListener("resize", function () { draw(true); });

  // ------------------------------------------------------------ keyboard

  // Arrow keys, Page Up/Down, Home/End move between cells; rows out of view are
  // drawn first, so a keyboard user reaches every one of the 200,000 cells.
  function focusCell(r, c) {
    r = Math.max(0, Math.min(rows.length - 1, r));
    c = Math.max(0, Math.min(cases.length - 1, c));
    var line = lineOf[r];
    var y = line * pitch + thead.offsetHeight;
    if (y < wrap.scrollTop + thead.offsetHeight || y + pitch > wrap.scrollTop + wrap.clientHeight) {
      wrap.scrollTop = Math.max(0, y - wrap.clientHeight / 2);
    }
    draw(false);
    var td = document.getElementById("c-" + cases[c][0] + "-" + rows[r][0]);
    if (!td) return;
    if (!td.firstElementChild) td.tabIndex = -1;
    (td.firstElementChild || td).focus({ preventScroll: true });
  }

  wrap.addEventListener("keydown", function (event) {
    var td = event.target.closest ? event.target.closest("td.cell") : null;
    if (!td) return;
    var ids = /^c-(\d+)-(\d+)$/.exec(td.id);
    if (!ids) return;
    var r = rowOf.get(Number(ids[2])), c = colOf.get(Number(ids[1]));
    var page = Math.max(1, Math.floor(wrap.clientHeight / pitch) - 2);
    var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      PageUp: [-page, 0], PageDown: [page, 0], Home: [0, -c], End: [0, cases.length] };
    var move = moves[event.key];
    if (!move || r == null || c == null) return;
    event.preventDefault();
    focusCell(r + move[0], c + move[1]);
  });

  // ------------------------------------------------------------ live updates

  function apply(cells) {
    if (!ready) return false;
    var changed = false;
    for (var k = 0; k < cells.length; k++) {
      var cell = cells[k];
      var r = rowOf.get(cell.cluster_id), c = colOf.get(cell.case_id);
      if (r == null || c == null) continue; // not on this page (filters)
      var i = r * cases.length + c, before = alert[i], beforeSev = SEVERITIES[severity[i]];
      var was = [run[i], alert[i], severity[i], runId[i]];
      // (Index 0 is a state too: "succeeded", "ok", "critical"; unknown names fall back.)
      if (cell.run_state != null) run[i] = lookup(runIndex, cell.run_state, "none");
      // Absent alert_state (a run dispatched or started): keep the alert shown.
      if (cell.alert_state != null) alert[i] = lookup(alertIndex, cell.alert_state, "ok");
      if (cell.severity != null) severity[i] = lookup(severityIndex, cell.severity, "");
      if ("run_id" in cell) runId[i] = cell.run_id || 0;
      if (was[0] === run[i] && was[1] === alert[i] && was[2] === severity[i] && was[3] === runId[i]) continue;
      changed = true;
      if (ALERTS[before] === "firing" && beforeSev in firing) firing[beforeSev] -= 1;
      var sev = SEVERITIES[severity[i]];
      if (ALERTS[alert[i]] === "firing" && sev in firing) firing[sev] += 1;
      var line = lineOf[r];
      if (line >= drawn[0] && line < drawn[1]) {
        var td = document.getElementById("c-" + cases[c][0] + "-" + rows[r][0]);
        if (td) td.outerHTML = cellHtml(r, c);
      }
    }
    return changed;
  }

  function lookup(index, name, fallback) {
    return Object.prototype.hasOwnProperty.call(index, name || fallback) ? index[name || fallback] : index[fallback];
  }

  function counts() { return firing; }

  // A resident cell from state.json (full) or an "rcell" push (only the newest window's
  // state: ignored while a resident alert fires on the cell). Written into the model,
  // and into the DOM if the row is drawn. False before grid.json is read.
  function resident(cell, pushed) {
    if (!ready) return false;
    var entry = resCells.get(cell.probe_id + "-" + cell.cluster_id);
    if (!entry) return true;  // not a column or row of this page
    if (pushed) {
      if (entry.alert_state === "firing") return true;
      entry.state = cell.state === "down" ? "down" : "up";
    } else {
      entry.state = cell.state;
      entry.availability = cell.availability;
      entry.p99_ms = cell.p99_ms;
      entry.alert_state = cell.alert_state || "ok";
    }
    var td = document.getElementById("r-" + cell.probe_id + "-" + cell.cluster_id);
    if (td) {
      for (var k = 0; k < resCols.length; k++) {
        if (resCols[k][0] === cell.probe_id) { td.outerHTML = residentHtml(k, cell.cluster_id); break; }
      }
    }
    return true;
  }

  function residentColumns() { return resCols; }

  function load() {
    // A load asked for during another one may need newer data than that one read.
    if (loading) return loading.then(function () { return load(); });
    var started = performance.now();
    loading = fetch(wrap.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        decode(data);
        var first = !ready;
        ready = true;
        draw(true);
        measure();
        if (first) {
          performance.mark("matrix-ready");
          wrap.dataset.ready = "true";
          wrap.dataset.loadMs = String(Math.round(performance.now() - started));
        }
        document.dispatchEvent(new CustomEvent("kubeprobe:counts", { detail: firing }));
        document.dispatchEvent(new CustomEvent("kubeprobe:grid", { detail: { first: first } }));
      })
      .catch(function (e) {
        summary.textContent = fill(_("The matrix could not be loaded (%(error)s); reload the page."), { error: String(e) }, true);
      })
      .then(function () { loading = null; });
    return loading;
  }

  window.kubeprobeGrid = {
    load: load, apply: apply, counts: counts, resident: resident, residentColumns: residentColumns
  };
  // live.js loads the grid once subscribed; without it (no WebSocket, script missing)
  // or if the socket is slow to answer, load anyway.
  setTimeout(function () { if (!ready && !loading) load(); }, "WebSocket" in window ? 300 : 0);
})();
