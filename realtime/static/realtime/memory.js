// Memory entries, live, for staff: the memory page (its own socket) and the session page's memory tab
// (frames arrive on the session's socket, through session.js). Rows are built by the server
// (realtime.fragments); an entry past its expires_at is taken off the page here (no event is sent).
(function () {
  "use strict";
  const rows = document.getElementById("memory-rows");
  if (!rows) return;
  const empty = document.getElementById("memory-empty");
  const count = document.getElementById("memory-count");
  const showExpired = rows.hasAttribute("data-show-expired");

  function changed() {
    const shown = rows.querySelectorAll("tr.memory-entry").length;
    if (count) count.textContent = String(shown);
    if (empty) empty.hidden = shown > 0;
  }

  function fromServer(html) {
    return window.SharedContext.fromServer(html, "tr.memory-entry");
  }

  // One frame: {"type": "memory", "action": "set" | "delete", "id": N, "html": "<tr…>" | null}.
  function apply(frame) {
    const old = document.getElementById("memory-" + Number(frame.id));
    if (frame.action === "delete") {
      if (old) old.remove();
    } else if (frame.html) {
      const row = fromServer(frame.html);
      row.classList.add("fresh");
      if (old) {
        old.replaceWith(row);
      } else {
        const after = Array.from(rows.children).find(function (other) { return other.dataset.order > row.dataset.order; });
        rows.insertBefore(row, after || null);
      }
    }
    changed();
  }

  // Expiry: the row goes (or, where the page shows expired entries, is marked) once its time has passed.
  function expire() {
    const now = Date.now();
    rows.querySelectorAll("tr.memory-entry[data-expires-at]").forEach(function (row) {
      if (Date.parse(row.dataset.expiresAt) > now || row.classList.contains("expired")) return;
      if (showExpired) row.classList.add("expired"); else row.remove();
    });
    changed();
  }
  setInterval(expire, 1000);

  window.SharedContext.memory = { apply: apply };

  // The session page's tabs: Messages and Memory (where the plain-text switch has nothing to switch).
  const tabs = document.querySelectorAll('.tabs [role="tab"]');
  const plain = document.getElementById("plain-toggle");
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function () {
      tabs.forEach(function (other) {
        const chosen = other === tab;
        other.setAttribute("aria-selected", chosen ? "true" : "false");
        other.tabIndex = chosen ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !chosen;
      });
      if (plain) plain.hidden = tab.id === "tab-memory";
    });
  });

  // The memory page has a socket of its own (the session page's frames come through session.js).
  if (rows.hasAttribute("data-session-tab")) return;
  const finalCloses = JSON.parse(rows.dataset.finalCloses || "{}");
  let retry = 0;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + rows.dataset.wsPath);
    socket.onopen = function () { retry = 0; };
    socket.onmessage = function (message) {
      const frame = JSON.parse(message.data);
      if (frame.type === "memory") apply(frame);
    };
    socket.onclose = function (close) {
      if (Object.hasOwn(finalCloses, close.code)) return;  // e.g. signed out, or no longer staff
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, window.SharedContext.reconnectDelay(retry));
    };
  }
  connect();
})();
