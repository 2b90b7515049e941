// The host page's charts (SPEC §8): one request to
// /ui/hosts/{id}/charts returns every chart in uPlot's columnar form; this
// file draws them, with a range picker, drag-to-zoom (a refetch of that
// window), cursors synced across charts, units in the legend and on the
// axes, colours from the page's CSS variables (redrawn on a theme switch)
// and sizes that follow the container.
//
// Contract with the page (templates/host.html) and the browser tests:
// - #charts carries data-host-id and the initial window (data-initial-range,
//   or data-initial-start/-end); each slot is .chart[data-chart-id].
// - After drawing, #charts gets data-range (a named range or "custom"),
//   data-tier, data-step and data-loaded="true"; each .chart gets
//   data-points (its number of x values, 0 when it has no data).
(function () {
  "use strict";

  var root = document.getElementById("charts");
  if (!root) return;
  var picker = document.getElementById("range-picker");
  var resetButton = document.getElementById("reset-zoom");
  var windowText = document.getElementById("charts-window");
  var hostId = root.dataset.hostId;
  var HEIGHT = 220;
  var DEFAULT_RANGE = "1h";
  var SYNC_KEY = "spectra-host-" + hostId;

  var state = {
    range: root.dataset.initialRange && root.dataset.initialRange !== "custom" ? root.dataset.initialRange : DEFAULT_RANGE,
    zoom: null,
  };
  if (root.dataset.initialStart) {
    state.zoom = { start: root.dataset.initialStart, end: root.dataset.initialEnd || "" };
  }

  var plots = {};     // chart id -> uPlot
  var lastDoc = null; // the last answer, redrawn on theme change
  var requestSeq = 0;

  // ------------------------------------------------------------ formatting

  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    var v = Math.abs(n), u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    var sign = n < 0 ? "-" : "";
    if (u === 0) return sign + v.toFixed(0) + " B";
    return sign + (v < 10 ? v.toFixed(1) : v.toFixed(0)) + " " + units[u];
  }

  function format(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    switch (unit) {
      case "%": return (Math.abs(v) < 10 ? v.toFixed(1) : v.toFixed(0)) + " %";
      case "B": return bytes(v);
      case "B/s": return bytes(v) + "/s";
      case "°C": return v.toFixed(1) + " °C";
      case "dBm": return v.toFixed(0) + " dBm";
      case "Hz": return Math.abs(v) >= 1e9 ? (v / 1e9).toFixed(2) + " GHz" : (v / 1e6).toFixed(0) + " MHz";
      case "V": return v.toFixed(3) + " V";
      case "W": return v.toFixed(2) + " W";
      default: return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
    }
  }

  // ------------------------------------------------------------ colours

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return v && v.trim() ? v.trim() : fallback;
  }

  function theme() {
    var palette = [];
    for (var i = 1; i <= 10; i++) palette.push(cssVar("--chart-" + i, "#1d5fd6"));
    return {
      text: cssVar("--muted", "#5a6472"),
      grid: cssVar("--grid", "rgba(0,0,0,0.08)"),
      border: cssVar("--border", "#d9dee5"),
      palette: palette,
    };
  }

  // ------------------------------------------------------------ drawing

  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }

  // Time ticks in UTC, 24-hour, with the date under the first tick of
  // each day (ISO order: 11-25 rather than a locale's 11/25/26).
  function timeLabels(u, splits, axisIdx, space, incr) {
    var prevDay = null;
    return splits.map(function (v) {
      if (v === null) return "";
      var iso = new Date(v * 1000).toISOString();
      var day = iso.slice(5, 10);
      var time = incr < 60 ? iso.slice(11, 19) : iso.slice(11, 16);
      var label = incr >= 86400 ? day : (day !== prevDay ? time + "\n" + day : time);
      prevDay = day;
      return label;
    });
  }

  function yRange(chart) {
    return function (u, min, max) {
      if (min === null || max === null || !isFinite(min) || !isFinite(max)) return [0, chart.y_max || 1];
      if (chart.unit === "dBm" || chart.unit === "°C") {
        var pad = Math.max((max - min) * 0.1, chart.unit === "dBm" ? 5 : 2);
        return [Math.floor(min - pad), Math.ceil(max + pad)];
      }
      var lo = Math.min(0, min);
      var hi = Math.max(max, chart.y_max || 0);
      if (hi <= lo) hi = lo + 1;
      if (!chart.y_max || max > chart.y_max) hi = hi * 1.05;
      return [lo, hi];
    };
  }

  function options(chart, doc, width, colors) {
    var startS = Date.parse(doc.start) / 1000;
    var endS = Date.parse(doc.end) / 1000;
    var series = [{ value: function (u, v) { return v === null ? "—" : utc(v).toISOString().slice(0, 19).replace("T", " ") + "Z"; } }];
    chart.series.forEach(function (s, i) {
      var color = colors.palette[i % colors.palette.length];
      series.push({
        label: s.label,
        stroke: color,
        width: 1.5,
        spanGaps: false,
        points: { size: 4 },
        value: function (u, v) { return format(v, chart.unit); },
      });
    });
    var axis = { stroke: colors.text, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid, width: 1 } };
    return {
      width: width,
      height: HEIGHT,
      tzDate: utc,
      cursor: {
        sync: { key: SYNC_KEY },
        drag: { x: true, y: false, setScale: false },
      },
      select: { show: true },
      legend: { show: true, live: true },
      scales: {
        x: { time: true, range: function () { return [startS, endS]; } },
        y: { range: yRange(chart) },
      },
      axes: [
        Object.assign({}, axis, { values: timeLabels, size: 44 }),
        Object.assign({}, axis, {
          size: 78,
          values: function (u, splits) { return splits.map(function (v) { return format(v, chart.unit); }); },
        }),
      ],
      series: series,
      hooks: {
        setSelect: [function (u) {
          if (u.select.width < 5) return;
          var min = u.posToVal(u.select.left, "x");
          var max = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          zoomTo(min, max);
        }],
      },
    };
  }

  function note(el, text) {
    var p = document.createElement("p");
    p.className = "muted chart-empty";
    p.textContent = text;
    el.appendChild(p);
  }

  function summary(chart) {
    var parts = chart.series.map(function (s, i) {
      var ys = chart.y[i];
      for (var k = ys.length - 1; k >= 0; k--) {
        if (ys[k] !== null) return s.label + " " + format(ys[k], chart.unit);
      }
      return s.label + " no value";
    });
    return chart.title + ", latest: " + parts.join(", ");
  }

  function drawChart(el, chart, doc, colors) {
    var old = plots[chart.id];
    if (old) { old.destroy(); delete plots[chart.id]; }
    el.textContent = "";
    if (!chart.x.length || !chart.series.length) {
      note(el, "No data in this window.");
      el.dataset.points = "0";
      el.removeAttribute("aria-label");
      return;
    }
    var width = Math.max(el.clientWidth || 0, 200);
    plots[chart.id] = new uPlot(options(chart, doc, width, colors), [chart.x].concat(chart.y), el);
    el.dataset.points = String(chart.x.length);
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", summary(chart));
  }

  function addSlot(chart) {
    var figure = document.createElement("figure");
    figure.className = "chart-card";
    var caption = document.createElement("figcaption");
    caption.textContent = chart.title;
    var el = document.createElement("div");
    el.className = "chart";
    el.dataset.chartId = chart.id;
    figure.appendChild(caption);
    figure.appendChild(el);
    root.appendChild(figure);
    observe(el);
    return el;
  }

  function draw(doc) {
    lastDoc = doc;
    var colors = theme();
    var drawn = {};
    doc.charts.forEach(function (chart) {
      var el = root.querySelector('.chart[data-chart-id="' + chart.id + '"]');
      if (!el) {
        if (!chart.x.length || !chart.series.length) return;
        el = addSlot(chart);
      }
      drawn[chart.id] = true;
      drawChart(el, chart, doc, colors);
    });
    Array.prototype.forEach.call(root.querySelectorAll(".chart"), function (el) {
      if (drawn[el.dataset.chartId]) return;
      var old = plots[el.dataset.chartId];
      if (old) { old.destroy(); delete plots[el.dataset.chartId]; }
      el.textContent = "";
      note(el, "No data in this window.");
      el.dataset.points = "0";
    });
    root.dataset.range = state.zoom ? "custom" : state.range;
    root.dataset.tier = doc.tier;
    root.dataset.step = String(doc.step_s);
    // How long the last load took, request to drawn charts (read by the
    // browser test and the chart-load measurement in docs/performance.md).
    if (loadStarted) root.dataset.loadMs = String(Math.round(performance.now() - loadStarted));
    root.dataset.loaded = "true";
    root.setAttribute("aria-busy", "false");
    if (windowText) {
      windowText.classList.remove("error-message");
      windowText.textContent = doc.description;
    }
  }

  // ------------------------------------------------------------ loading

  function query() {
    if (state.zoom) {
      var q = "start=" + encodeURIComponent(state.zoom.start);
      if (state.zoom.end) q += "&end=" + encodeURIComponent(state.zoom.end);
      return q;
    }
    return "range=" + encodeURIComponent(state.range);
  }

  function syncControls() {
    if (picker) {
      Array.prototype.forEach.call(picker.querySelectorAll("[data-range]"), function (b) {
        b.setAttribute("aria-pressed", !state.zoom && b.dataset.range === state.range ? "true" : "false");
      });
    }
    if (resetButton) resetButton.hidden = !state.zoom;
    try {
      history.replaceState(history.state, "", location.pathname + "?" + query());
    } catch (e) { /* a sandboxed page may refuse: the URL just does not follow */ }
  }

  function showError(message) {
    root.dataset.loaded = "false";
    root.setAttribute("aria-busy", "false");
    if (windowText) {
      windowText.classList.add("error-message");
      windowText.textContent = message;
    }
  }

  var loadStarted = 0;

  function load() {
    var seq = ++requestSeq;
    loadStarted = performance.now();
    syncControls();
    root.dataset.loaded = "false";
    root.setAttribute("aria-busy", "true");
    if (windowText) {
      windowText.classList.remove("error-message");
      windowText.textContent = "Loading charts…";
    }
    fetch("/ui/hosts/" + encodeURIComponent(hostId) + "/charts?" + query(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (r) {
      return r.json().catch(function () { return { error: r.status + " " + r.statusText }; }).then(function (body) {
        if (seq !== requestSeq) return; // a newer request is on its way
        if (!r.ok || !body || !body.charts) {
          showError((body && body.error) || ("The charts could not be loaded (" + r.status + ")."));
          return;
        }
        draw(body);
      });
    }, function () {
      if (seq === requestSeq) showError("The server did not answer; the charts could not be loaded.");
    });
  }

  function isoSeconds(s) {
    return new Date(Math.round(s) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  function zoomTo(min, max) {
    if (!(max > min)) return;
    state.zoom = { start: isoSeconds(min), end: isoSeconds(max) };
    load();
  }

  if (picker) {
    picker.addEventListener("click", function (ev) {
      var b = ev.target.closest("[data-range]");
      if (!b) return;
      state.range = b.dataset.range;
      state.zoom = null;
      load();
    });
  }
  if (resetButton) {
    resetButton.addEventListener("click", function () {
      state.zoom = null;
      load();
      var pressed = picker && picker.querySelector('[aria-pressed="true"]');
      if (pressed) pressed.focus();
    });
  }

  // ------------------------------------------------------------ theme, size

  function redraw() { if (lastDoc) draw(lastDoc); }
  document.addEventListener("spectra:theme", redraw);
  if (window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    if (mq.addEventListener) mq.addEventListener("change", redraw);
  }

  var resizeObserver = null;
  var pending = false;
  function resizeAll() {
    pending = false;
    Object.keys(plots).forEach(function (id) {
      var u = plots[id];
      var el = root.querySelector('.chart[data-chart-id="' + id + '"]');
      if (!el) return;
      var width = Math.max(el.clientWidth, 200);
      if (Math.abs(u.width - width) > 1) u.setSize({ width: width, height: HEIGHT });
    });
  }
  if (window.ResizeObserver) {
    resizeObserver = new ResizeObserver(function () {
      if (!pending) { pending = true; requestAnimationFrame(resizeAll); }
    });
  }
  function observe(el) { if (resizeObserver) resizeObserver.observe(el); }
  Array.prototype.forEach.call(root.querySelectorAll(".chart"), observe);

  function start() {
    if (typeof uPlot === "undefined") {
      showError("The chart library did not load.");
      return;
    }
    load();
  }
  // Deferred scripts run in order, uPlot first; DOMContentLoaded has not
  // fired yet when this runs, or has: either way start once.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
