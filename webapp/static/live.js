// The live page: one poll per open view (the tasks table, or an active task's page), sent
// with the version the view was read at and answered 204 while nothing on it changed.
// Every 2 s while a task on screen is active or just after the user's own action, the
// bell's interval otherwise; never while the tab is hidden, never two at once. Answers
// morph into the page (idiomorph), so focus, selection, scroll, an open dialog or the
// bell's menu are left as they are.
(function () {
  "use strict";
  var FAST_MS = 2000;
  // The user's own action (a launch, a cancel) keeps the view fast for this long.
  var OWN_ACTION_MS = 20000;
  // Past this a poll is given up and the next one sent.
  var STUCK_MS = 30000;
  var timer = null;
  var inFlight = null;
  var fastUntil = 0;

  function liveElement() { return document.querySelector("[data-live]"); }

  function slowMs() {
    var seconds = parseFloat(document.body.getAttribute("data-poll-seconds"));
    return (seconds > 0 ? seconds : 30) * 1000;
  }

  // Every task on screen with its status: the rows of the table, or the task's page. The
  // server marks the active ones (data-active), so no list of statuses lives here.
  function tasksIn(elt) {
    var found = {};
    var nodes = Array.prototype.slice.call(elt.querySelectorAll("[data-task-id][data-status]"));
    if (elt.hasAttribute("data-task-id")) { nodes.push(elt); }
    nodes.forEach(function (node) {
      found[node.getAttribute("data-task-id")] = {
        status: node.getAttribute("data-status"), active: node.hasAttribute("data-active")
      };
    });
    return found;
  }

  function isFast(elt) {
    return Date.now() < fastUntil || elt.querySelector("[data-active]") !== null ||
      elt.hasAttribute("data-active");
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = null;
    var elt = liveElement();
    if (!elt || inFlight) { return; }
    var pace = isFast(elt) ? Math.min(FAST_MS, slowMs()) : slowMs();
    timer = setTimeout(poll, delay === undefined ? pace : delay);
  }

  function poll() {
    timer = null;
    var elt = liveElement();
    // A hidden tab sends nothing; it polls at once when it is shown again.
    if (!elt || !window.htmx || document.hidden || inFlight) { return; }
    var url = elt.getAttribute("data-live");
    var headers = {};
    if (elt.querySelector("tbody") || elt.id === "tasks-table") {
      // What the table shows, so the answer carries only the rows that changed.
      headers["X-Live-Rows"] = Array.prototype.map.call(
        elt.querySelectorAll("tr[data-task-id]"),
        function (row) { return row.getAttribute("data-task-id"); }).join(",");
    }
    var request = { elt: elt, url: url, before: tasksIn(elt) };
    inFlight = request;
    var done = function () {
      if (inFlight !== request) { return; }
      inFlight = null;
      if (request.stale) {  // its answer was dropped: ask again at once
        schedule(0);
        return;
      }
      try { report(request); } finally { schedule(); }
    };
    // A request that never ends (a server gone silent) must not stop the view for good.
    setTimeout(function () {
      if (inFlight === request) {
        window.htmx.trigger(elt, "htmx:abort");
        done();
      }
    }, STUCK_MS);
    window.htmx.ajax("GET", url + (url.indexOf("?") < 0 ? "?" : "&") + "since=" +
      encodeURIComponent(elt.getAttribute("data-version") || ""),
      { source: elt, target: elt, swap: "morph:outerHTML", headers: headers }).then(done, done);
  }

  // Tell the rest of the page (toasts, the announcer, the bell) what changed on screen.
  function report(request) {
    var elt = liveElement();
    if (!elt) { return; }
    var now = tasksIn(elt);
    var changed = false;
    Object.keys(now).forEach(function (id) {
      var before = request.before[id];
      if (before === undefined) { changed = true; return; }
      if (before.status === now[id].status) { return; }
      changed = true;
      var node = document.querySelector('[data-task-id="' + id + '"][data-status]');
      document.dispatchEvent(new CustomEvent("task-status", {
        detail: {
          id: id, before: before.status, now: now[id].status,
          wasActive: before.active, active: now[id].active, node: node,
          description: node ? node.getAttribute("data-description") : "",
          outcome: node ? node.getAttribute("data-outcome") : "",
          url: node ? node.getAttribute("data-url") : ""
        }
      }));
    });
    if (changed) {
      // The bell's counts follow what the view saw; `live` keeps it from counting as
      // the user's own action.
      window.htmx.trigger(document.body, "tasks-changed", { live: true });
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    // A poll answered after the user moved to another page or filter, or after the answer
    // to the user's own action, is stale.
    if (inFlight && event.detail.requestConfig && event.detail.requestConfig.elt === inFlight.elt &&
        (inFlight.stale || !inFlight.elt.isConnected ||
         inFlight.elt.getAttribute("data-live") !== inFlight.url)) {
      event.detail.shouldSwap = false;
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var version = xhr && xhr.getResponseHeader("X-Live-Version");
    var elt = liveElement();
    if (version && elt && (!inFlight || (event.detail.elt === inFlight.elt && !inFlight.stale))) {
      elt.setAttribute("data-version", version);
    }
  });
  document.addEventListener("tasks-changed", function (event) {
    if (event.detail && event.detail.live) { return; }
    fastUntil = Date.now() + OWN_ACTION_MS;
    // A poll under way may have read the tasks before the action: its answer would undo
    // what the action's own answer shows (a cancelled row back to running). It is dropped
    // unswapped, the view keeps its version, and the poll sent next misses nothing.
    if (inFlight) { inFlight.stale = true; }
    schedule(0);
  });
  document.addEventListener("htmx:load", function (event) {
    // A new table (another page or filter): its own pace from now on.
    if (event.detail.elt.hasAttribute && event.detail.elt.hasAttribute("data-live")) { schedule(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { schedule(0); }
  });
  document.addEventListener("DOMContentLoaded", function () { schedule(); });
})();
