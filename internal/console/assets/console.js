// nocbridge console: refreshes the live pages (main[data-refresh]) in place
// every 15 s while the tab is visible and nobody is typing, selecting or
// reading an opened detail. Everything works without it; this only saves
// pressing reload.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var every = 15000;
  if (!window.fetch || !window.DOMParser) return;

  function live() { return document.querySelector("main[data-refresh]"); }

  function busy(main) {
    var a = document.activeElement;
    if (document.hidden) return true;
    if (a && a !== document.body && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    if (String(window.getSelection ? window.getSelection() : "").length > 0) return true;
    return main.querySelector("details[open]") !== null;
  }

  function refresh() {
    var main = live();
    if (!main) return;
    if (busy(main)) return later();
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" }, redirect: "manual" })
      .then(function (r) {
        if (r.status !== 200) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main[data-refresh]");
        var now = live();
        if (fresh && now && !busy(now)) now.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () { /* keep what is shown; try again later */ })
      .then(later);
  }

  function later() { window.setTimeout(refresh, every); }

  if (live()) later();
})();
