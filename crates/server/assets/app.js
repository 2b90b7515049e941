// Small behaviours shared by every page: theme switch, copy buttons,
// request errors shown to the user, relative focus after swaps.
(function () {
  "use strict";

  function currentTheme() {
    var set = document.documentElement.dataset.theme;
    if (set) return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest("#theme-toggle");
    if (toggle) {
      var next = currentTheme() === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("spectra-theme", next); } catch (e) { /* not saved */ }
      document.dispatchEvent(new CustomEvent("spectra:theme", { detail: next }));
      return;
    }
    var copy = ev.target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.dataset.copy);
      if (!source) return;
      var text = source.value !== undefined ? source.value : source.textContent;
      var done = function () {
        var old = copy.textContent;
        copy.textContent = "Copied";
        setTimeout(function () { copy.textContent = old; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
      } else {
        // Plain-HTTP pages have no clipboard API: select it for Ctrl+C.
        selectText(source);
      }
    }
  });

  function selectText(el) {
    if (el.select) { el.focus(); el.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // htmx leaves failed requests silent by default: say what went wrong.
  function showError(text) {
    var box = document.getElementById("toast");
    if (!box) {
      box = document.createElement("div");
      box.id = "toast";
      box.setAttribute("role", "alert");
      document.body.appendChild(box);
    }
    box.textContent = text;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  document.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail.xhr;
    if (xhr.getResponseHeader("HX-Redirect")) return;
    var message = xhr.status + " " + xhr.statusText;
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error) message = body.error;
    } catch (e) {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var p = doc.querySelector(".error-message");
      if (p) message = p.textContent;
    }
    // A target that wants errors in place gets them there.
    var target = ev.detail.target;
    if (target && target.hasAttribute("data-show-errors")) {
      target.innerHTML = "";
      var p2 = document.createElement("p");
      p2.className = "error-message";
      p2.setAttribute("role", "alert");
      p2.textContent = message;
      target.appendChild(p2);
      return;
    }
    showError(message);
  });
  document.addEventListener("htmx:sendError", function () {
    showError("The server did not answer; it may be restarting. Retrying on the next refresh.");
  });
})();
