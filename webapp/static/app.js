// Small enhancements over htmx, in a file so the CSP needs no inline script or eval:
// polling only while the tab is visible, the bell menu, local times, the confirm
// dialog, the selection of rows to cancel, and telling the user of status changes
// (announcements, toasts, the title).
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

  // --- The bell's poll carries the version its counts were read at. Refreshed by an event
  // (the user's own action, a return to the tab) it asks for fresh counts: timed polls may
  // be answered from what the server was last told.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || elt.id !== "bell-badge") { return; }
    event.detail.parameters.since = elt.getAttribute("data-version") || "";
    if (event.detail.triggeringEvent) {
      event.detail.headers["X-Bell-Fresh"] = "1";
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    var version = event.detail.xhr && event.detail.xhr.getResponseHeader("X-Live-Version");
    if (elt && elt.id === "bell-badge" && version) { elt.setAttribute("data-version", version); }
  });

  // --- Times: the markup carries the UTC instant; show it in the user's zone.
  var sameDay = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  var exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  var otherDay = new Intl.DateTimeFormat(undefined,
    { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
  var otherYear = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
  // A log line's time: to the second, without a relative hint (lines come seconds apart).
  var clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
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
      node.title = exact.format(date);
      if (node.hasAttribute("data-clock")) {
        node.textContent = clock.format(date);
        return;
      }
      var today = new Date();
      var format = date.toDateString() === today.toDateString() ? sameDay
        : date.getFullYear() === today.getFullYear() ? otherDay : otherYear;
      // The clock time in the user's zone, a quieter relative hint, the exact instant on hover.
      var hint = document.createElement("span");
      hint.className = "ago";
      hint.textContent = " · " + ago(date);
      node.textContent = format.format(date);
      node.appendChild(hint);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localizeTimes(document); });
  document.addEventListener("htmx:load", function (event) { localizeTimes(event.detail.elt); });
  setInterval(function () { if (!document.hidden) { localizeTimes(document); } }, 30000);

  // --- The bell menu: a disclosure that loads its content when it opens, with the keys of
  // the menu-button pattern: arrows, Home and End move between its items, Escape closes it
  // and returns to the button, and focus leaving it (Tab past its last item) closes it.
  function bellParts() {
    return { button: document.getElementById("bell-button"), menu: document.getElementById("bell-menu"),
             badge: document.getElementById("bell-badge") };
  }

  function menuItems(menu) {
    return Array.prototype.filter.call(menu.querySelectorAll("a[href], button"),
      function (item) { return !item.hidden; });
  }

  // Which item to focus once the menu's content has arrived ("first", "last" or null).
  var focusWhenLoaded = null;
  var menuLoading = false;

  function focusItem(menu, where) {
    var items = menuItems(menu);
    if (items.length) { items[where === "last" ? items.length - 1 : 0].focus(); }
  }

  function setMenu(open, focusButton) {
    var bell = bellParts();
    if (!bell.button || !bell.menu) { return; }
    bell.button.setAttribute("aria-expanded", open ? "true" : "false");
    bell.menu.hidden = !open;
    if (open) {
      menuLoading = true;
      window.htmx.ajax("GET", bell.button.getAttribute("data-menu-url"),
        // Morphed into the open menu: reopened, it shows the last list at once, and the
        // fresh one keeps the item the keyboard is on.
        { target: "#bell-menu", swap: "morph:innerHTML" });
    } else {
      focusWhenLoaded = null;
      if (focusButton) { bell.button.focus(); }
    }
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var menu = event.detail.target;
    if (!menu || menu.id !== "bell-menu") { return; }
    menuLoading = false;
    offerNotifications(menu);
    if (focusWhenLoaded && !menu.hidden) { focusItem(menu, focusWhenLoaded); }
    focusWhenLoaded = null;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.failed && event.detail.target && event.detail.target.id === "bell-menu") {
      menuLoading = false;
      focusWhenLoaded = null;
    }
  });

  document.addEventListener("click", function (event) {
    var bell = bellParts();
    if (!bell.button) { return; }
    // The badge sits on the button's corner (and shows its tooltips): a click on it is one on the bell.
    if (bell.button.contains(event.target) || (bell.badge && bell.badge.contains(event.target))) {
      event.preventDefault();
      setMenu(bell.button.getAttribute("aria-expanded") !== "true", false);
    } else if (!bell.menu.hidden && !bell.menu.contains(event.target)) {
      setMenu(false, false);
    }
  });

  var moves = { ArrowDown: 1, ArrowUp: -1, Home: "first", End: "last" };
  document.addEventListener("keydown", function (event) {
    var bell = bellParts();
    if (!bell.button || !bell.menu) { return; }
    var open = !bell.menu.hidden;
    if (event.key === "Escape" && open) {
      setMenu(false, true);
      return;
    }
    var move = moves[event.key];
    if (move === undefined || event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.target === bell.button && typeof move === "number") {
      event.preventDefault();
      var where = move > 0 ? "first" : "last";
      if (open && !menuLoading) {
        focusItem(bell.menu, where);
      } else {
        focusWhenLoaded = where;
        if (!open) { setMenu(true, false); }
      }
    } else if (open && bell.menu.contains(event.target)) {
      event.preventDefault();
      var items = menuItems(bell.menu);
      var index = items.indexOf(document.activeElement);
      if (typeof move === "string") {
        focusItem(bell.menu, move);
      } else if (items.length) {
        // Wrapping, as menus do; from nowhere in particular, Up starts at the end.
        var next = index < 0 ? (move > 0 ? 0 : items.length - 1) : index + move;
        items[(next + items.length) % items.length].focus();
      }
    }
  });
  // Focus moving elsewhere closes the menu (Tab past its last item, Shift+Tab before the
  // button); focus lost to nowhere (content swapped under it) does not.
  document.addEventListener("focusout", function (event) {
    var bell = bellParts();
    var to = event.relatedTarget;
    if (!bell.menu || bell.menu.hidden || !to) { return; }
    var home = document.getElementById("bell");
    if (home && home.contains(event.target) && !home.contains(to)) { setMenu(false, false); }
  });

  // --- Browser notifications: opt-in from the menu, asked for on that click only, and never
  // offered where the browser would refuse (a frame, a policy, a permission already denied).
  function notificationsAllowed() {
    if (!("Notification" in window) || window.self !== window.top) { return false; }
    var policy = document.permissionsPolicy || document.featurePolicy;
    // A policy that does not know the feature says nothing about it.
    if (policy && policy.features && policy.features().indexOf("notifications") !== -1 &&
        !policy.allowsFeature("notifications")) {
      return false;
    }
    return Notification.permission !== "denied";
  }

  function offerNotifications(menu) {
    var button = menu.querySelector("[data-notify]");
    if (button) { button.hidden = !notificationsAllowed() || Notification.permission !== "default"; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-notify]");
    if (!button || !notificationsAllowed()) { return; }
    Notification.requestPermission().then(function () {
      var hadFocus = document.activeElement === button;
      var menu = document.getElementById("bell-menu");
      if (!menu) { return; }
      offerNotifications(menu);
      // Answered, the button is gone: keep the keyboard in the menu.
      if (hadFocus && button.hidden && !menu.hidden) { focusItem(menu, "last"); }
    });
  });

  // --- Confirm a cancel in an in-page dialog (window.confirm is blocked in sandboxed iframes).
  // The bulk cancel form (data-confirm-many) asks the same way, saying how many.
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    var many = form.hasAttribute && form.hasAttribute("data-confirm-many");
    if (!form.hasAttribute || !(many || form.hasAttribute("data-confirm"))) { return; }
    dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    event.preventDefault();
    var count = many ? selectedRows().length : 1;
    if (count === 0) {
      document.getElementById("bulk-result").textContent = "Select the tasks to cancel first.";
      return;
    }
    var title = document.getElementById("confirm-title");
    title.textContent = many ? "Cancel " + count + " selected task" + (count === 1 ? "" : "s") + "?"
      : title.getAttribute("data-one");
    document.getElementById("confirm-text").textContent = many ? "" : form.getAttribute("data-confirm");
    // A queued task will never start once cancelled; a running one stops at a safe point.
    var status = many ? "many" : form.getAttribute("data-status") === "queued" ? "queued" : "running";
    ["confirm-note", "confirm-keep", "confirm-go"].forEach(function (id) {
      var node = document.getElementById(id);
      if (node) { node.textContent = node.getAttribute("data-" + status); }
    });
    dialog.returnValue = "";
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "confirm") { event.detail.issueRequest(true); }
    });
    dialog.showModal();
  });

  // --- Launch forms (htmx posts them): an upload shows its progress while the button stays
  // disabled (hx-disabled-elt); a launch answers 303 to the new task, which the request
  // followed, so the browser goes there; a refused form (400) comes back in place.
  function launchForm(event) {
    var config = event.detail.requestConfig;
    var form = config ? config.elt : event.detail.elt;
    return form && form.classList && form.classList.contains("launch-form") ? form : null;
  }

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = launchForm(event);
    var bar = form && form.querySelector(".upload-progress");
    if (!bar || !event.detail.lengthComputable || !event.detail.total) { return; }
    bar.hidden = false;
    bar.value = Math.round(100 * event.detail.loaded / event.detail.total);
    bar.textContent = bar.value + "%";
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = launchForm(event);
    if (!form) { return; }
    var xhr = event.detail.xhr;
    var landed = new URL(xhr.responseURL || form.action, window.location.href);
    if (landed.pathname !== new URL(form.action, window.location.href).pathname) {
      event.detail.shouldSwap = false;
      window.location.assign(landed.href);
    } else if (xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!launchForm(event)) { return; }
    var invalid = document.querySelector(".launch-form [aria-invalid=true]");
    if (invalid && invalid.tagName === "FIELDSET") { invalid = invalid.querySelector("input"); }
    if (invalid) { invalid.focus(); }
  });

  // --- Touch: a tap on a row's description or outcome shows it whole (a hover does elsewhere).
  document.addEventListener("click", function (event) {
    var text = event.target.closest && event.target.closest("td .truncate");
    if (text && window.matchMedia("(pointer: coarse)").matches) { text.classList.toggle("expanded"); }
  });

  // --- Cancel many: the selection outlives live updates, which morph the rows afresh.
  var selected = {};

  function rowBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input.select-row"));
  }

  function selectedRows() { return rowBoxes().filter(function (box) { return box.checked; }); }

  function showSelection() {
    var boxes = rowBoxes();
    boxes.forEach(function (box) { box.checked = selected[box.value] === true; });
    var all = document.querySelector("input.select-page");
    if (all) { all.checked = boxes.length > 0 && boxes.every(function (box) { return box.checked; }); }
  }

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.classList.contains("select-row")) {
      selected[box.value] = box.checked;
    } else if (box.classList.contains("select-page")) {
      rowBoxes().forEach(function (row) { selected[row.value] = box.checked; });
    } else {
      return;
    }
    showSelection();
  });
  ["htmx:afterSettle", "htmx:oobAfterSwap"].forEach(function (name) {
    document.addEventListener(name, showSelection);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.id === "bulk-cancel" && event.detail.successful) {
      selected = {};
      showSelection();
    }
  });

  // --- Status changes seen on screen (live.js dispatches "task-status" on document):
  // announced politely, and a task that finished shows a toast (and a browser notification
  // when the user asked for them and is not looking at this page).
  var toasted = {};
  document.addEventListener("task-status", function (event) {
    var task = event.detail || {};
    var name = task.description || "A task";
    var announcer = document.getElementById("announcer");
    if (announcer && task.before && task.now) { announcer.textContent = name + ": " + task.now; }
    if (task.active || !task.wasActive || toasted[task.id]) { return; }
    toasted[task.id] = true;
    showToast(task, name);
    notifyBrowser(task, name);
  });

  // --- Toasts: a few at a time, each closing by itself unless the pointer or focus is on it
  // (so it can be read and its link reached), or by its close button.
  var TOAST_MS = 8000;
  var MAX_TOASTS = 3;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function showToast(task, name) {
    var region = document.getElementById("toasts");
    if (!region) { return; }
    var toast = element("div", "toast toast-" + task.now);
    toast.setAttribute("data-task", task.id || "");
    var head = element("p", "toast-head");
    // The status as the page shows it (the server's icon and word).
    var shown = task.node && task.node.querySelector(".status");
    var badge = shown ? shown.cloneNode(true) : element("span", "status", task.now);
    var link = element(task.url ? "a" : "strong", "toast-title", name);
    if (task.url) { link.href = task.url; }
    head.appendChild(badge);
    head.appendChild(document.createTextNode(" "));
    head.appendChild(link);
    toast.appendChild(head);
    if (task.outcome) { toast.appendChild(element("p", "toast-outcome", task.outcome)); }
    var close = element("button", "toast-close");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss: " + name);
    close.innerHTML = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">' +
      '<path d="M4 4l8 8M12 4l-8 8" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';
    toast.appendChild(close);

    var timer = null;
    function remove() { clearTimeout(timer); if (toast.parentNode) { toast.parentNode.removeChild(toast); } }
    function wait() { clearTimeout(timer); timer = setTimeout(remove, TOAST_MS); }
    function hold() { clearTimeout(timer); }
    close.addEventListener("click", remove);
    toast.addEventListener("mouseenter", hold);
    toast.addEventListener("mouseleave", function () { if (!toast.contains(document.activeElement)) { wait(); } });
    toast.addEventListener("focusin", hold);
    toast.addEventListener("focusout", function (event) {
      if (!toast.contains(event.relatedTarget) && !toast.matches(":hover")) { wait(); }
    });
    while (region.children.length >= MAX_TOASTS) { region.removeChild(region.firstElementChild); }
    region.appendChild(toast);
    wait();
  }

  // Polls rest while the tab is hidden, so "not looking" is also a visible tab in a window
  // that has lost focus (behind another application).
  function notifyBrowser(task, name) {
    if (!notificationsAllowed() || Notification.permission !== "granted" ||
        (!document.hidden && document.hasFocus())) {
      return;
    }
    var notice = new Notification(name + ": " + task.now,
      { body: task.outcome || "", tag: "task-" + task.id });
    notice.addEventListener("click", function () {
      window.focus();
      if (task.url) { window.location.assign(task.url); }
      notice.close();
    });
  }

  // --- The document title counts active tasks, from the bell's badge: "(2) Tasks · ...".
  var titlePrefix = "";
  function countInTitle() {
    var count = document.querySelector("#bell-badge .badge-count[data-count]");
    var title = document.title;
    if (titlePrefix && title.indexOf(titlePrefix) === 0) { title = title.slice(titlePrefix.length); }
    titlePrefix = count ? "(" + count.getAttribute("data-count") + ") " : "";
    document.title = titlePrefix + title;
  }
  document.addEventListener("DOMContentLoaded", countInTitle);
  document.addEventListener("htmx:load", countInTitle);
})();
