// Diagnostics panel (issue 6): client-side filters for the netstat and log
// tables the server renders. Results arrive through htmx swaps, so every
// handler is delegated from the document and looks its elements up by id.
(function () {
  "use strict";

  function rowText(row) {
    if (row._text === undefined) row._text = row.textContent.toLowerCase();
    return row._text;
  }

  function terms(input) {
    return input.value.toLowerCase().split(/\s+/).filter(function (t) { return t.length > 0; });
  }

  function matches(row, words) {
    var text = rowText(row);
    for (var i = 0; i < words.length; i++) {
      if (text.indexOf(words[i]) < 0) return false;
    }
    return true;
  }

  function say(id, shown, total, filtered) {
    var out = document.getElementById(id);
    if (out) out.textContent = filtered ? shown + " of " + total + " shown" : "";
  }

  function filterNetstat() {
    var input = document.getElementById("netstat-filter");
    var table = document.getElementById("netstat-table");
    if (!input || !table || !table.tBodies[0]) return;
    var words = terms(input);
    var rows = table.tBodies[0].rows;
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var ok = matches(rows[i], words);
      rows[i].hidden = !ok;
      if (ok) shown++;
    }
    say("netstat-count", shown, rows.length, words.length > 0);
  }

  function filterLogs() {
    var input = document.getElementById("log-filter");
    var level = document.getElementById("log-level-filter");
    var table = document.getElementById("log-table");
    if (!table || !table.tBodies[0]) return;
    var words = input ? terms(input) : [];
    var min = level ? parseInt(level.value, 10) || 0 : 0;
    var rows = table.tBodies[0].rows;
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var rank = parseInt(rows[i].getAttribute("data-level-rank"), 10) || 0;
      var ok = rank >= min && matches(rows[i], words);
      rows[i].hidden = !ok;
      if (ok) shown++;
    }
    say("log-count", shown, rows.length, words.length > 0 || min > 0);
  }

  document.addEventListener("input", function (ev) {
    var id = ev.target && ev.target.id;
    if (id === "netstat-filter") filterNetstat();
    else if (id === "log-filter") filterLogs();
  });

  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.id === "log-level-filter") filterLogs();
  });

  // A state chip filters the netstat table to that state (again: clears).
  document.addEventListener("click", function (ev) {
    var chip = ev.target.closest && ev.target.closest("[data-netstat-state]");
    if (!chip) return;
    var input = document.getElementById("netstat-filter");
    if (!input) return;
    var state = chip.getAttribute("data-netstat-state");
    input.value = input.value === state ? "" : state;
    filterNetstat();
    input.focus();
  });
})();
