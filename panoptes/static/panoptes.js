/* panoptes dashboard: live updates and local times. Hand-written, no dependencies.
 *
 * Pages are complete without this file. With it:
 * - times (<time datetime>) are shown in the browser's time zone;
 * - the page listens to the server-sent event stream named in <body data-stream>; on a change
 *   it re-fetches the same URL and swaps every element marked data-live (by id) with the
 *   server-rendered one, plus the document title. At most one fetch is in flight, and
 *   refreshes are at least MIN_GAP_MS apart, however fast the events come.
 */
(function () {
  "use strict";

  var MIN_GAP_MS = 1000;

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function localTime(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function localizeTimes(root) {
    var nodes = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.hasAttribute("data-local")) continue;
      var date = new Date(node.getAttribute("datetime"));
      if (isNaN(date.getTime())) continue;
      node.setAttribute("title", node.textContent.trim());
      node.textContent = localTime(date);
      node.setAttribute("data-local", "");
    }
  }

  function keepDetailsState(oldRegion, newRegion) {
    var olds = oldRegion.querySelectorAll("details[id]");
    for (var i = 0; i < olds.length; i++) {
      var twin = newRegion.querySelector("#" + CSS.escape(olds[i].id));
      if (twin) twin.open = olds[i].open;
    }
  }

  function swap(doc) {
    var focused = document.activeElement;
    var regions = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < regions.length; i++) {
      var region = regions[i];
      // Never pull a form from under the user's fingers.
      if (focused && focused !== document.body && region.contains(focused)) continue;
      var fresh = doc.getElementById(region.id);
      if (!fresh) continue;
      keepDetailsState(region, fresh);
      localizeTimes(fresh);
      region.replaceWith(document.adoptNode(fresh));
    }
    if (doc.title) document.title = doc.title;
    document.documentElement.setAttribute("data-refreshed", String(Date.now()));
  }

  var inFlight = false;
  var again = false;
  var timer = null;
  var lastRun = 0;

  function refresh() {
    timer = null;
    inFlight = true;
    lastRun = Date.now();
    fetch(window.location.href, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Panoptes-Live": "1" }
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) {
      swap(new DOMParser().parseFromString(html, "text/html"));
    }).catch(function () {
      /* the next event retries */
    }).then(function () {
      inFlight = false;
      if (again) {
        again = false;
        schedule();
      }
    });
  }

  function schedule() {
    if (inFlight) {
      again = true;
      return;
    }
    if (timer !== null) return;
    timer = window.setTimeout(refresh, Math.max(0, lastRun + MIN_GAP_MS - Date.now()));
  }

  function setIndicator(state, text) {
    var indicator = document.getElementById("live-indicator");
    if (!indicator) return;
    indicator.className = "live " + state;
    indicator.textContent = text;
  }

  function listen(url) {
    if (!("EventSource" in window)) return;
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      setIndicator("on", "live");
    });
    source.addEventListener("error", function () {
      setIndicator("off", "reconnecting…");
    });
    source.addEventListener("change", schedule);
    source.addEventListener("deleted", function () {
      source.close();
      setIndicator("off", "run deleted");
      var notice = document.getElementById("gone");
      if (notice) notice.hidden = false;
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  function start() {
    localizeTimes(document);
    var url = document.body.getAttribute("data-stream");
    if (url) listen(url);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
