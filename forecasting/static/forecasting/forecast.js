// Forecast page: one Chart.js chart per forecast run, drawn from the JSON the page embeds
// (#forecast-charts): the recent values the model saw, the forecast's expected value with its
// 80% and 95% intervals as shaded bands, the alert thresholds (dashed red), the personal
// baseline band (green) and the expected crossing of the threshold (a triangle).
// The x axis is linear in epoch milliseconds with our own tick labels: no date adapter needed.
(function () {
  "use strict";
  var charts = JSON.parse(document.getElementById("forecast-charts").textContent);
  var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function when(ms, hourly) {
    var d = new Date(ms);
    var day = d.getDate() + " " + months[d.getMonth()];
    return hourly ? day + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) : day;
  }
  function across(data, value) { return [{ x: data.start, y: value }, { x: data.end, y: value }]; }
  function band(points, key) {
    return points.map(function (p) { return { x: p.x, y: p[key] }; });
  }

  function datasets(data, colour) {
    var sets = [];
    if (data.baseline) {
      sets.push({ label: "usual low", data: across(data, data.baseline.low), borderColor: "rgba(46,125,50,0.35)",
        borderWidth: 1, pointRadius: 0, fill: false, order: 6 });
      sets.push({ label: "usual range", data: across(data, data.baseline.high), borderColor: "rgba(46,125,50,0.35)",
        backgroundColor: "rgba(46,125,50,0.10)", borderWidth: 1, pointRadius: 0, fill: "-1", order: 6 });
    }
    var f = data.forecast;
    if (f.length) {
      sets.push({ label: "95% low", data: band(f, "lo95"), borderWidth: 0, pointRadius: 0, fill: false, order: 5 });
      sets.push({ label: "95% interval", data: band(f, "hi95"), borderWidth: 0, pointRadius: 0,
        backgroundColor: "rgba(21,101,192,0.13)", fill: "-1", order: 5 });
      sets.push({ label: "80% low", data: band(f, "lo80"), borderWidth: 0, pointRadius: 0, fill: false, order: 4 });
      sets.push({ label: "80% interval", data: band(f, "hi80"), borderWidth: 0, pointRadius: 0,
        backgroundColor: "rgba(21,101,192,0.25)", fill: "-1", order: 4 });
    }
    (data.lines || []).forEach(function (line) {
      sets.push({ label: line.label, data: across(data, line.value), borderColor: "#c62828",
        borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false, order: 3 });
    });
    if (data.crossing !== null && data.threshold !== null && data.trusted) {
      sets.push({ label: "expected crossing", data: [{ x: data.crossing, y: data.threshold }], showLine: false,
        pointStyle: "triangle", pointRadius: 8, borderColor: "#c62828", backgroundColor: "#c62828", order: 0 });
    }
    sets.push({ label: "forecast (expected)", data: band(f, "yhat"), borderColor: "#1565c0",
      borderDash: data.trusted ? [] : [4, 4], borderWidth: 2, pointRadius: 0, fill: false, order: 1 });
    var seen = data.history.map(function (p) { return { x: p[0], y: p[1] }; });
    sets.push({ label: data.label + (data.unit ? " (" + data.unit + ")" : ""), data: seen,
      borderColor: colour, backgroundColor: colour, borderWidth: 1.5, pointRadius: seen.length > 150 ? 0 : 2,
      spanGaps: false, fill: false, order: 2 });
    return sets;
  }

  function draw(canvas, data) {
    var hourly = data.granularity === "hour";
    var shown = { "forecast (expected)": 1, "expected crossing": 1, "95% interval": 1, "80% interval": 1 };
    shown[data.label + (data.unit ? " (" + data.unit + ")" : "")] = 1;
    new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets(data, "#37474f") },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, parsing: true, normalized: true,
        interaction: { mode: "nearest", intersect: false },
        plugins: {
          legend: { display: true, labels: { boxWidth: 12, filter: function (item) { return shown[item.text]; } } },
          tooltip: { callbacks: { title: function (items) { return items.length ? when(items[0].parsed.x, hourly) : ""; } } }
        },
        scales: {
          x: { type: "linear", min: data.start, max: data.end,
            ticks: { callback: function (v) { return when(v, false); }, maxRotation: 0, autoSkipPadding: 20 } },
          y: { grace: "5%" }
        }
      }
    });
  }

  charts.forEach(function (data) {
    var canvas = document.querySelector('canvas[data-forecast="' + data.code + '"]');
    if (canvas && data.start !== null) draw(canvas, data);
  });
})();
