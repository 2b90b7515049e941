// Applies the saved theme before the first paint (loaded synchronously in
// <head>). With nothing saved, the CSS follows the system's preference.
(function () {
  try {
    var t = localStorage.getItem("spectra-theme");
    if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  } catch (e) { /* storage disabled: follow the system */ }
})();
