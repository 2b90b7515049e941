// Administration pages: a form marked `data-reset-on-success` is cleared
// once its htmx request succeeded, so passwords and names do not linger
// in it. (No inline handlers: the Content-Security-Policy forbids them.)
(function () {
  "use strict";
  document.addEventListener("htmx:afterRequest", function (ev) {
    var form = ev.detail.elt;
    if (!ev.detail.successful || !form || form.tagName !== "FORM") return;
    if (form.hasAttribute("data-reset-on-success")) form.reset();
  });
})();
