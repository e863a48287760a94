// Step latency charts of the case page: one small uPlot chart per step, p50 and p95.
// Data: the JSON script #step-latency, {"x": [unix s], "steps": [{"name", "p50": [], "p95": []}]}.
(function () {
  "use strict";
  function fmt(ms) {
    if (ms == null) return "—";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
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
        scales: { x: { time: true } },
        axes: [
          { stroke: "#9aa7b4", grid: { stroke: "#2a333f" } },
          { stroke: "#9aa7b4", grid: { stroke: "#2a333f" }, size: 64,
            values: function (u, ticks) { return ticks.map(fmt); } },
        ],
        series: [
          {},
          { label: "p50", stroke: "#5fd38d", width: 2, value: function (u, v) { return fmt(v); } },
          { label: "p95", stroke: "#f0a500", width: 2, dash: [6, 4], value: function (u, v) { return fmt(v); } },
        ],
      }, [data.x, step.p50, step.p95], wrap);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
