// Resident probe page: per cluster, an availability and a latency chart (uPlot), kept live.
// Data: the JSON script #resident-series, {"step": s, "span": s, "clusters": [{"id", "name",
// "t", "availability", "p50", "p99", "count"}]}; live.js re-dispatches the socket's
// "samples" frames as "kubeprobe:samples" events: {cluster_id, points: [[t, count,
// failures, p50, p99], ...]}.
(function () {
  "use strict";
  // Django's JavaScript catalog (/jsi18n/, loaded by base.html); English without it.
  var _ = window.gettext || function (s) { return s; };
  var charts = {};  // cluster id -> {avail, lat, sums: {t: [count, failures, p50sum, p99sum]}, data}

  function fmt(ms) {
    if (ms == null) return "—";
    return ms < 1000 ? ms.toFixed(1) + " ms" : (ms / 1000).toFixed(2) + " s";
  }

  function axes(values) {
    return [
      { stroke: "#9aa7b4", grid: { stroke: "#2a333f" } },
      { stroke: "#9aa7b4", grid: { stroke: "#2a333f" }, size: 64, values: values },
    ];
  }

  function draw() {
    var source = document.getElementById("resident-series");
    var box = document.getElementById("resident-charts");
    if (!source || !box || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var width = Math.max(280, Math.min(560, Math.floor((box.clientWidth || 900) / 2) - 24));
    data.clusters.forEach(function (c) {
      var row = document.createElement("div");
      row.className = "chart-row";
      row.dataset.cluster = c.id;
      box.appendChild(row);
      function figure(title) {
        var wrap = document.createElement("figure");
        wrap.className = "chart";
        var h = document.createElement("h3");
        h.textContent = c.name + ": " + title;
        wrap.appendChild(h);
        row.appendChild(wrap);
        return wrap;
      }
      var sums = {};
      c.t.forEach(function (t, i) {
        if (c.count[i]) sums[t] = [c.count[i], c.count[i] * (1 - c.availability[i] / 100),
          c.count[i] * c.p50[i], c.count[i] * c.p99[i]];
      });
      var avail = new uPlot({
        width: width, height: 180, scales: { x: { time: true }, y: { range: [0, 100] } },
        axes: axes(function (u, ticks) { return ticks.map(function (v) { return v + " %"; }); }),
        series: [{}, { label: _("availability"), stroke: "#5fd38d", width: 2,
          value: function (u, v) { return v == null ? "—" : v.toFixed(2) + " %"; } }],
      }, [c.t.slice(), c.availability.slice()], figure(_("availability")));
      var lat = new uPlot({
        width: width, height: 180, scales: { x: { time: true } },
        axes: axes(function (u, ticks) { return ticks.map(fmt); }),
        series: [{},
          { label: "p50", stroke: "#5fd38d", width: 2, value: function (u, v) { return fmt(v); } },
          { label: "p99", stroke: "#f0a500", width: 2, dash: [6, 4], value: function (u, v) { return fmt(v); } }],
      }, [c.t.slice(), c.p50.slice(), c.p99.slice()], figure(_("latency")));
      charts[c.id] = { avail: avail, lat: lat, sums: sums, t: c.t.slice() };
    });
    window.kubeprobeResident = { step: data.step, span: data.span, charts: charts };
  }

  function redraw(chart, step, span) {
    var now = Math.floor(Date.now() / 1000);
    var last = now - (now % step);
    var t = [], a = [], p50 = [], p99 = [];
    for (var b = last - span + step; b <= last; b += step) {
      var s = chart.sums[b];
      t.push(b);
      a.push(s && s[0] ? 100 * (1 - s[1] / s[0]) : null);
      p50.push(s && s[0] ? s[2] / s[0] : null);
      p99.push(s && s[0] ? s[3] / s[0] : null);
    }
    Object.keys(chart.sums).forEach(function (k) { if (+k < last - span) delete chart.sums[k]; });
    chart.avail.setData([t, a]);
    chart.lat.setData([t, p50, p99]);
  }

  document.addEventListener("kubeprobe:samples", function (event) {
    var msg = event.detail, state = window.kubeprobeResident;
    var chart = state && state.charts[msg.cluster_id];
    if (!chart) return;
    msg.points.forEach(function (p) {
      var b = p[0] - (p[0] % state.step);
      var s = chart.sums[b] || (chart.sums[b] = [0, 0, 0, 0]);
      s[0] += p[1]; s[1] += p[2]; s[2] += (p[3] || 0) * p[1]; s[3] += (p[4] || 0) * p[1];
    });
    redraw(chart, state.step, state.span);
    var cell = document.querySelector('tr[data-cluster="' + msg.cluster_id + '"] td[class^="state-"]');
    if (cell) { cell.className = "state-" + msg.state; cell.textContent = msg.state; }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
