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
  var table = wrap.querySelector("table");
  var thead = table.tHead;
  var tbody = table.tBodies[0];
  var summary = document.getElementById("grid-summary");
  var empty = document.getElementById("grid-empty");

  function prefix(value, tail) { return value.slice(0, value.length - tail.length); }
  var RUN_PREFIX = prefix(wrap.dataset.runPrefix, "0/");
  var CLUSTER_PREFIX = prefix(wrap.dataset.clusterPrefix, "x/");
  var CASE_PREFIX = prefix(wrap.dataset.casePrefix, "x/");

  // The codes of grid.py and the words and symbols of templatetags/dashboard.py.
  var RUN_BY_CODE = { S: "succeeded", F: "failed", E: "error", T: "timed_out", R: "running",
    D: "dispatched", P: "pending", "-": "none", u: "unscheduled" };
  var ALERT_BY_CODE = { o: "ok", f: "firing", a: "acknowledged", s: "silenced", "-": "ok" };
  var SEVERITY_BY_CODE = { c: "critical", w: "warning", i: "info", "-": "" };
  var RUN_SYMBOLS = { succeeded: "\u2713", failed: "\u2717", error: "!", timed_out: "\u25d4",
    running: "\u2026", dispatched: "\u2026", pending: "\u2026" };
  var RUN_WORDS = { timed_out: "timed out", none: "no result yet" };
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
    describe(data);
  }

  function describe(data) {
    var n = rows.length, m = cases.length;
    var text = n + " cluster" + (n === 1 ? "" : "s") + " \u00d7 " + m + " case" + (m === 1 ? "" : "s");
    summary.textContent = text;
    var other = data.unscheduled_cases;
    if (other) {
      var note = document.createElement("span");
      note.className = "note";
      note.id = "unscheduled-note";
      note.textContent = " \u00b7 columns are the cases a binding runs on these clusters or that have results; " +
        other + " other enabled case" + (other === 1 ? " is" : "s are") +
        " scheduled nowhere here (Columns: every enabled case shows " + (other === 1 ? "it" : "them") + ")";
      summary.appendChild(note);
    }
    wrap.hidden = n === 0;
    empty.hidden = n !== 0;
    table.setAttribute("aria-rowcount", String(n + 1));
    table.setAttribute("aria-colcount", String(m + 1));
    var head = ['<tr aria-rowindex="1"><th class="corner" scope="col">cluster</th>'];
    cases.forEach(function (c) {
      var name = escapeHtml(c[1]);
      head.push('<th scope="col" class="case" data-case="' + c[0] + '"><a href="' + CASE_PREFIX +
        encodeURIComponent(c[1]) + '/" title="' + name + '">' + name + "</a></th>");
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
        '<span title="not scheduled here">\u2013</span></td>';
    }
    var words = RUN_WORDS[runState] || runState;
    var title = alertState === "ok" ? words : words + "; alert " + alertState + " (" + sev + ")";
    var symbol = RUN_SYMBOLS[runState] || (alertState !== "ok" ? "\u00b7" : "");
    var ids = runId[i] ? String(runId[i]) : "";
    var inner = ids ? '<a href="' + RUN_PREFIX + ids + '/" title="' + title + '">' + symbol + "</a>" :
      (symbol ? '<span title="' + title + '">' + symbol + "</span>" : "");
    return '<td id="' + id + '" class="cell run-' + runState + " alert-" + alertState +
      '" data-severity="' + sev + '" data-run="' + ids + '">' + inner + "</td>";
  }

  function lineHtml(line) {
    var index = lines[line];
    if (index < 0) {
      var section = sections[-index - 1];
      return '<tr class="section-head"><th colspan="' + (cases.length + 1) + '" scope="rowgroup">' +
        escapeHtml(section[0]) + " <small>" + section[1] + " cluster" + (section[1] === 1 ? "" : "s") +
        "</small></th></tr>";
    }
    var row = rows[index], name = escapeHtml(row[1]);
    var out = ['<tr data-cluster="' + row[0] + '" aria-rowindex="' + (index + 2) + '">' +
      '<th scope="row" class="cluster"><a href="' + CLUSTER_PREFIX + encodeURIComponent(row[1]) +
      '/" title="' + escapeHtml(row[2]) + '">' + name + "</a>"];
    if (row[3]) {
      out.push(' <span class="warn unreachable" title="' + escapeHtml(row[3][2]) + '">unreachable since <time datetime="' +
        escapeHtml(row[3][0]) + '">' + escapeHtml(row[3][1]) + "</time></span>");
    }
    out.push("</th>");
    for (var c = 0; c < cases.length; c++) out.push(cellHtml(index, c));
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
      })
      .catch(function (e) {
        summary.textContent = "The matrix could not be loaded (" + e + "); reload the page.";
      })
      .then(function () { loading = null; });
    return loading;
  }

  window.kubeprobeGrid = { load: load, apply: apply, counts: counts };
  // live.js loads the grid once subscribed; without it (no WebSocket, script missing)
  // or if the socket is slow to answer, load anyway.
  setTimeout(function () { if (!ready && !loading) load(); }, "WebSocket" in window ? 300 : 0);
})();
