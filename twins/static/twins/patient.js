// Patient twin page: one Chart.js chart per vital (and NEWS2), fed by series.json, over the
// range chosen (24 h raw readings; 7 d / 30 d hourly means with their lowest–highest spread).
// Each chart shows the alert thresholds (dashed red) and the personal baseline band (green).
// The x axis is linear in epoch milliseconds with our own tick labels: no date adapter needed.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("twins-series").textContent);
  var charts = {};
  var colours = {
    news2: "#37474f", heart_rate: "#c62828", respiratory_rate: "#1565c0",
    oxygen_saturation: "#00838f", body_temperature: "#ef6c00", systolic: "#6a1b9a",
    diastolic: "#8e24aa", blood_glucose: "#558b2f", hrv_sdnn: "#5d4037",
    body_weight: "#455a64", steps: "#283593"
  };
  var bandColours = { low: "#2e7d32", "low-medium": "#f9a825", medium: "#ef6c00", high: "#c62828" };

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function tick(range) {
    return function (value) {
      var d = new Date(value);
      if (range === "24h") return pad(d.getHours()) + ":" + pad(d.getMinutes());
      return d.getDate() + " " + months[d.getMonth()];
    };
  }
  function when(ms) {
    var d = new Date(ms);
    return d.getDate() + " " + months[d.getMonth()] + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  // Ticks on round local times: every 3 h over 24 h, every day over 7 d, every 5 days over 30 d.
  var HOUR = 3600 * 1000;
  function roundTicks(range) {
    return function (scale) {
      var step = range === "24h" ? 3 * HOUR : range === "7d" ? 24 * HOUR : 5 * 24 * HOUR;
      var d = new Date(scale.min);
      if (range === "24h") d.setHours(d.getHours() + 1, 0, 0, 0);
      else d.setHours(24, 0, 0, 0);
      if (range === "24h") while (d.getHours() % 3) d.setHours(d.getHours() + 1);
      var ticks = [];
      for (var t = d.getTime(); t <= scale.max; t += step) ticks.push({ value: t });
      scale.ticks = ticks;
    };
  }
  function across(data, value) { return [{ x: data.start, y: value }, { x: data.end, y: value }]; }

  function news2Colour(total) {
    if (total >= 7) return bandColours.high;
    if (total >= 5) return bandColours.medium;
    return bandColours.low;
  }

  function datasets(data) {
    var colour = colours[data.vital] || "#37474f";
    var sets = [];
    if (data.baseline) {
      sets.push({ label: "usual low", data: across(data, data.baseline.low), borderColor: "rgba(46,125,50,0.35)",
        borderWidth: 1, pointRadius: 0, fill: false, order: 5 });
      sets.push({ label: "usual range", data: across(data, data.baseline.high), borderColor: "rgba(46,125,50,0.35)",
        backgroundColor: "rgba(46,125,50,0.12)", borderWidth: 1, pointRadius: 0, fill: "-1", order: 5 });
    }
    if (data.spread && data.spread.length) {
      sets.push({ label: "lowest", data: data.spread.map(function (p) { return { x: p[0], y: p[1] }; }),
        borderWidth: 0, pointRadius: 0, fill: false, order: 4 });
      sets.push({ label: "lowest–highest in the hour", data: data.spread.map(function (p) { return { x: p[0], y: p[2] }; }),
        borderWidth: 0, pointRadius: 0, backgroundColor: colour + "22", fill: "-1", order: 4 });
    }
    (data.lines || []).forEach(function (line) {
      sets.push({ label: line.label, data: across(data, line.value), borderColor: "#c62828",
        borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false, order: 3 });
    });
    var points = data.points.map(function (p) { return { x: p[0], y: p[1], partial: p[2] }; });
    var main = { label: data.label + (data.unit ? " (" + data.unit + ")" : ""), data: points,
      borderColor: colour, backgroundColor: colour, borderWidth: 1.5, fill: false, order: 1,
      pointRadius: points.length > 150 ? 0 : 2.5, tension: 0 };
    if (data.vital === "news2") {
      main.stepped = true;
      main.pointRadius = points.length > 300 ? 0 : 3;
      main.pointBackgroundColor = points.map(function (p) { return p.partial ? "#fff" : news2Colour(p.y); });
      main.pointBorderColor = points.map(function (p) { return news2Colour(p.y); });
    }
    sets.push(main);
    return sets;
  }

  function draw(canvas, data) {
    var vital = data.vital;
    var options = {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: true, normalized: true,
      interaction: { mode: "nearest", intersect: false },
      plugins: {
        legend: { display: false },
        tooltip: {
          filter: function (item) { return item.datasetIndex === item.chart.data.datasets.length - 1; },
          callbacks: { title: function (items) { return items.length ? when(items[0].parsed.x) : ""; } }
        }
      },
      scales: {
        x: { type: "linear", min: data.start, max: data.end, afterBuildTicks: roundTicks(data.range),
          ticks: { callback: tick(data.range), autoSkip: false, maxRotation: 0 } },
        y: vital === "news2" ? { min: 0, suggestedMax: 9, ticks: { stepSize: 1 } } : { grace: "5%" }
      }
    };
    if (charts[vital]) charts[vital].destroy();
    charts[vital] = new window.Chart(canvas, { type: "line", data: { datasets: datasets(data) }, options: options });
    var note = canvas.parentNode.parentNode.querySelector(".twins-empty");
    if (!data.points.length && !note) {
      note = document.createElement("p");
      note.className = "twins-sub twins-empty";
      note.textContent = "No reading in this range.";
      canvas.parentNode.parentNode.appendChild(note);
    } else if (data.points.length && note) {
      note.remove();
    }
  }

  function load(range) {
    document.querySelectorAll("canvas[data-vital]").forEach(function (canvas) {
      var vital = canvas.getAttribute("data-vital");
      var url = config.url + "?vital=" + encodeURIComponent(vital) + "&range=" + encodeURIComponent(range);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (data) { if (!data.error) draw(canvas, data); });
    });
  }

  document.querySelectorAll(".twins-range button[data-range]").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll(".twins-range button[data-range]").forEach(function (b) {
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      });
      load(button.getAttribute("data-range"));
    });
  });
  load("24h");
})();
