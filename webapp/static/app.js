// Small enhancements over htmx, in a file so the CSP needs no inline script or eval:
// polling only while the tab is visible, the bell menu, local times, the confirm
// dialog and polite announcements of status changes.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // --- Polling: skip polls while the tab is hidden or a dialog is open; catch up on return.
  var dialog = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-poll") &&
        (document.hidden || (dialog && dialog.open))) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && window.htmx) {
      window.htmx.trigger(document.body, "tab-visible");
    }
  });

  // --- The bell refreshed by an event (the user's own action, a return to the tab) asks
  // for fresh counts: timed polls may be answered from what the server was last told.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "bell-badge" && event.detail.triggeringEvent) {
      event.detail.headers["X-Bell-Fresh"] = "1";
    }
  });

  // --- Times: the markup carries the UTC instant; show it in the user's zone.
  var sameDay = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  var exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  var otherDay = new Intl.DateTimeFormat(undefined,
    { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
  var otherYear = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
  var steps = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function ago(date) {
    var seconds = (date.getTime() - Date.now()) / 1000;
    for (var i = 0; i < steps.length; i++) {
      if (Math.abs(seconds) >= steps[i][1] || steps[i][0] === "second") {
        return relative.format(Math.round(seconds / steps[i][1]), steps[i][0]);
      }
    }
    return "";
  }

  function localizeTimes(root) {
    var nodes = (root.querySelectorAll ? root : document).querySelectorAll("time[datetime]");
    Array.prototype.forEach.call(nodes, function (node) {
      var date = new Date(node.getAttribute("datetime"));
      if (isNaN(date)) { return; }
      var today = new Date();
      var format = date.toDateString() === today.toDateString() ? sameDay
        : date.getFullYear() === today.getFullYear() ? otherDay : otherYear;
      // The clock time in the user's zone, a quieter relative hint, the exact instant on hover.
      var hint = document.createElement("span");
      hint.className = "ago";
      hint.textContent = " · " + ago(date);
      node.textContent = format.format(date);
      node.appendChild(hint);
      node.title = exact.format(date);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localizeTimes(document); });
  document.addEventListener("htmx:load", function (event) { localizeTimes(event.detail.elt); });
  setInterval(function () { if (!document.hidden) { localizeTimes(document); } }, 30000);

  // --- The bell menu: a disclosure that loads its content when it opens.
  function bellParts() {
    return { button: document.getElementById("bell-button"), menu: document.getElementById("bell-menu") };
  }

  function setMenu(open, focusButton) {
    var bell = bellParts();
    if (!bell.button || !bell.menu) { return; }
    bell.button.setAttribute("aria-expanded", open ? "true" : "false");
    bell.menu.hidden = !open;
    if (open) {
      window.htmx.ajax("GET", bell.button.getAttribute("data-menu-url"),
        { target: "#bell-menu", swap: "innerHTML" });
    } else if (focusButton) {
      bell.button.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var bell = bellParts();
    if (!bell.button) { return; }
    if (bell.button.contains(event.target)) {
      event.preventDefault();
      setMenu(bell.button.getAttribute("aria-expanded") !== "true", false);
    } else if (!bell.menu.hidden && !bell.menu.contains(event.target)) {
      setMenu(false, false);
    }
  });
  document.addEventListener("keydown", function (event) {
    var bell = bellParts();
    if (event.key === "Escape" && bell.menu && !bell.menu.hidden) {
      setMenu(false, true);
    }
  });

  // --- Confirm a cancel in an in-page dialog (window.confirm is blocked in sandboxed iframes).
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (!form.hasAttribute || !form.hasAttribute("data-confirm")) { return; }
    dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    event.preventDefault();
    document.getElementById("confirm-text").textContent = form.getAttribute("data-confirm");
    dialog.returnValue = "";
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "confirm") { event.detail.issueRequest(true); }
    });
    dialog.showModal();
  });

  // --- Announce status changes of swapped rows, politely.
  var labels = { queued: "queued", running: "running", completed: "completed", failed: "failed",
                 cancelled: "cancelled", cancelling: "cancelling" };
  var finished = { completed: true, failed: true, cancelled: true };
  var previous = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id && target.hasAttribute("data-status")) {
      previous[target.id] = target.getAttribute("data-status");
    }
  });
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (!elt.id || !elt.hasAttribute || !elt.hasAttribute("data-status")) { return; }
    var before = previous[elt.id];
    var now = elt.getAttribute("data-status");
    delete previous[elt.id];
    if (before && before !== now) {
      var announcer = document.getElementById("announcer");
      var name = elt.getAttribute("data-description") || "A task";
      if (announcer) { announcer.textContent = name + ": " + (labels[now] || now); }
      // A task seen finishing here changes the bell's counts: refresh it now, not at the next poll.
      if (finished[now] && window.htmx) { window.htmx.trigger(document.body, "tasks-changed"); }
    }
  });
})();
