// modeltap ui: draws the charts whose data the server put in <script type="application/json">
// blocks (never inline script: the page's Content-Security-Policy allows only these files).
"use strict";

(function () {
  if (typeof Chart === "undefined") return;
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;
  const blue = "rgba(36, 87, 197, 0.85)", light = "rgba(36, 87, 197, 0.35)";
  const orange = "rgba(217, 119, 6, 0.75)", red = "rgba(180, 35, 24, 0.9)";

  function bars(spec) {  // records per hour (or partition); estimated bars lighter
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [{
          data: spec.values,
          backgroundColor: spec.estimated.map((e) => (e ? light : blue)),
          barPercentage: 1.0, categoryPercentage: 0.9,
        }],
      },
      options: {
        responsive: false, maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (c) =>
            (spec.estimated[c.dataIndex] ? "≈" : "") + c.parsed.y.toLocaleString() +
            " records per " + spec.unit } },
        },
        scales: { x: { display: false }, y: { display: false, beginAtZero: true } },
      },
    };
  }

  function distribution(spec) {  // reference vs production, shares of each
    const share = (counts) => {
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      return counts.map((c) => c / total);
    };
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [
          { label: "reference", data: share(spec.reference), backgroundColor: light },
          { label: "production", data: share(spec.production), backgroundColor: orange },
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { callback: (v) => Math.round(v * 100) + "%" } } },
      },
    };
  }

  function history(spec) {  // a metric over runs, with its threshold
    return {
      type: "line",
      data: {
        labels: spec.labels,
        datasets: [
          { label: spec.metric, data: spec.values, borderColor: blue, backgroundColor: blue,
            pointBackgroundColor: spec.breached.map((b) => (b ? red : blue)), pointRadius: 4 },
          { label: "threshold", data: spec.thresholds, borderColor: red, borderDash: [4, 4],
            pointRadius: 0, fill: false },
        ],
      },
      options: { responsive: true, maintainAspectRatio: false },
    };
  }

  const kinds = { bars, distribution, history };
  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    const spec = JSON.parse(source.textContent);
    const make = kinds[spec.kind];
    if (make) new Chart(canvas, make(spec));
  });
})();
