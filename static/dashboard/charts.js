// Step latency charts of the case page: one small uPlot chart per step, p50 and p95 of the
// steps that passed, and failed steps as red points apart (a fast failure is no speed-up).
// Data: the JSON script #step-latency,
// {"x": [unix s], "steps": [{"name", "p50": [], "p95": [], "failed": []}]}.
(function () {
  "use strict";
  // Django's JavaScript catalog (/jsi18n/, loaded by base.html); English without it.
  var _ = window.gettext || function (s) { return s; };
  function fmt(ms) {
    if (ms == null) return "—";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  // The legend shows the newest values until the cursor is on the chart (uPlot's own
  // legend shows "--" without a cursor).
  function newest(u) {
    var xs = u.data[0];
    for (var i = xs.length - 1; i >= 0; i--) {
      for (var s = 1; s < u.data.length; s++) if (u.data[s][i] != null) return i;
    }
    return xs.length - 1;
  }
  function showNewest(u) {
    if (u.cursor.idx == null && u.data[0].length) u.setLegend({ idx: newest(u) });
  }
  function failedPoints() {
    return null; // points only: failures are separate events, not a trend
  }
  function draw() {
    var source = document.getElementById("step-latency");
    var box = document.getElementById("step-charts");
    if (!source || !box || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var width = Math.max(280, Math.min(520, Math.floor((box.clientWidth || 900) / 2) - 24));
    data.steps.forEach(function (step) {
      var wrap = document.createElement("figure");
      wrap.className = "chart";
      var title = document.createElement("h3");
      title.textContent = step.name;
      wrap.appendChild(title);
      box.appendChild(wrap);
      new uPlot({
        width: width,
        height: 180,
        // One bucket alone would get a range of years: an hour either side instead.
        scales: { x: { time: true, auto: false, range: function (u, min, max) {
          var xs = u.data[0];
          if (!xs.length) return [min, max];
          var lo = xs[0], hi = xs[xs.length - 1];
          return hi - lo < 60 ? [lo - 3600, hi + 3600] : [lo, hi];
        } } },
        axes: [
          { stroke: "#9aa7b4", grid: { stroke: "#2a333f" } },
          { stroke: "#9aa7b4", grid: { stroke: "#2a333f" }, size: 64,
            values: function (u, ticks) { return ticks.map(fmt); } },
        ],
        series: [
          {},
          { label: "p50", stroke: "#5fd38d", width: 2, value: function (u, v) { return fmt(v); } },
          { label: "p95", stroke: "#f0a500", width: 2, dash: [6, 4], value: function (u, v) { return fmt(v); } },
          { label: _("failed"), stroke: "#ff5252", width: 0, paths: failedPoints,
            points: { show: true, size: 9, stroke: "#ff5252", fill: "#ff5252" },
            value: function (u, v) { return v == null ? _("none") : "✗ " + fmt(v); } },
        ],
        hooks: { ready: [showNewest], setCursor: [showNewest] },
      }, [data.x, step.p50, step.p95, step.failed || data.x.map(function () { return null; })], wrap);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
