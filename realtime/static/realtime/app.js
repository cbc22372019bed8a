// Shared page helpers: show every <time data-local> in the reader's time zone.
(function () {
  "use strict";
  const UNITS = [
    ["year", 31557600], ["month", 2629800], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1],
  ];
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function ago(date) {
    const seconds = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(seconds) < 30) return "just now";
    for (const [unit, size] of UNITS) {
      if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
    }
    return "just now";
  }

  // Format one <time> element; its text is always set with textContent.
  function localTime(node) {
    const date = new Date(node.dateTime);
    if (Number.isNaN(date.getTime())) return;
    const mode = node.dataset.local;
    node.title = date.toLocaleString();
    if (mode === "relative") {
      node.textContent = ago(date);
    } else if (mode === "time" || (mode === "datetime" && sameDay(date, new Date()))) {
      node.textContent = date.toLocaleTimeString();
    } else {
      node.textContent = date.toLocaleString();
    }
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(localTime);
  }

  // Milliseconds before reconnect attempt number ``retry``: doubling, capped at 4 s, with jitter.
  function reconnectDelay(retry) {
    return Math.round(Math.min(250 * 2 ** retry, 4000) * (0.75 + Math.random() / 2));
  }

  // The element matching ``selector`` in HTML the server built (sanitized there), its times made local.
  function fromServer(html, selector) {
    const template = document.createElement("template");
    template.innerHTML = html;
    const element = template.content.querySelector(selector);
    localTimes(element);
    return element;
  }

  window.SharedContext = {
    localTime: localTime, localTimes: localTimes, reconnectDelay: reconnectDelay, fromServer: fromServer,
  };
  localTimes(document);
  setInterval(function () {
    document.querySelectorAll('time[data-local="relative"]').forEach(localTime);
  }, 30000);
})();
