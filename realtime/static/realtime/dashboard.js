// Live dashboard: session rows update as agents write; new sessions appear on page 1.
(function () {
  "use strict";
  const table = document.getElementById("sessions");
  const status = document.getElementById("status");
  if (!table) return;
  const page = Number(table.dataset.page) || 1;
  const pageSize = Number(table.dataset.pageSize) || 50;
  const query = (table.dataset.query || "").toLowerCase();
  const stateFilter = table.dataset.state || "";  // "", "open" or "closed"
  const sessionUrl = table.dataset.sessionUrl;  // with a placeholder id
  const PLACEHOLDER = "session_0000000000000000";
  let retry = 0;
  let connected = false;
  let everConnected = false;
  let refreshTimer = null;
  let socket = null;

  function rows() { return document.getElementById("session-rows"); }

  function setStatus(state, text) {
    status.dataset.state = state;
    status.className = "status " + state;
    status.querySelector(".label").textContent = text;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // always text, never HTML
    return node;
  }

  function findRow(sessionId) {
    for (const row of rows().querySelectorAll("tr[data-session-id]")) {
      if (row.dataset.sessionId === sessionId) return row;
    }
    return null;
  }

  function matches(summary) {
    if (stateFilter === "closed") return false;  // a session that gets messages is open
    if (!query) return true;
    return [summary.purpose, summary.created_by, summary.session_id]
      .some(function (field) { return String(field).toLowerCase().includes(query); });
  }

  function truncate(text, length) {
    return text.length > length ? text.slice(0, length - 1) + "…" : text;
  }

  function newRow(summary) {
    const row = el("tr");
    row.dataset.sessionId = summary.session_id;
    const purpose = el("td", "purpose");
    const link = el("a", "", truncate(summary.purpose, 120));
    link.href = sessionUrl.replace(PLACEHOLDER, encodeURIComponent(summary.session_id));
    const closed = el("span", "badge badge-closed", "closed");
    closed.hidden = true;
    purpose.append(link, " ", closed, el("code", "sid", summary.session_id));
    const agents = el("td", "agents");
    agents.append(el("ul", "chips"));
    const activity = el("td", "activity");
    const time = el("time");
    time.dataset.local = "relative";
    activity.append(time);
    row.append(purpose, el("td", "creator", summary.created_by), agents, el("td", "num count", "0"), activity);
    return row;
  }

  function update(row, summary) {
    row.querySelector(".count").textContent = String(summary.message_count);
    const time = row.querySelector("time");
    time.dateTime = summary.last_activity;
    window.SharedContext.localTime(time);
    const chips = row.querySelector(".chips");
    const known = new Set(Array.from(chips.children, function (chip) { return chip.textContent; }));
    for (const name of summary.senders) {
      if (!known.has(name)) chips.append(el("li", "chip", name));
    }
    row.classList.remove("flash");
    void row.offsetWidth;  // restart the highlight animation
    row.classList.add("flash");
  }

  function apply(summary) {
    let row = findRow(summary.session_id);
    if (!row) {
      if (page !== 1 || !matches(summary)) return;
      if (summary.message_count > summary.senders.length && summary.message_count > 1) {
        // A session from a later page moved up: its full row comes from the server.
        scheduleRefresh();
        return;
      }
      row = newRow(summary);
      rows().querySelectorAll("tr.empty-row").forEach(function (empty) { empty.remove(); });
    }
    if (page === 1 && rows().firstElementChild !== row) rows().prepend(row);
    update(row, summary);
    while (page === 1 && rows().querySelectorAll("tr[data-session-id]").length > pageSize) {
      rows().lastElementChild.remove();
    }
  }

  // Re-read this page's rows from the server (after a reconnect, or for a row it cannot build).
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) {
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("session-rows");
          if (!fresh) return;
          const adopted = document.adoptNode(fresh);
          rows().replaceWith(adopted);
          window.SharedContext.localTimes(adopted);
        })
        .catch(function () { /* the next summary or reconnect tries again */ });
    }, 300);
  }

  // A session closed, reopened or renamed by staff: its row follows, or leaves a filter it no longer fits.
  function applyState(frame) {
    const row = findRow(frame.session_id);
    if (!row) {
      if (stateFilter === "closed" && !frame.is_active && page === 1) scheduleRefresh();  // its row comes from the server
      return;
    }
    if ((stateFilter === "open" && !frame.is_active) || (stateFilter === "closed" && frame.is_active)) {
      row.remove();
      return;
    }
    row.querySelector(".purpose a").textContent = truncate(frame.purpose, 120);
    const badge = row.querySelector(".purpose .badge-closed");
    if (badge) badge.hidden = frame.is_active;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + table.dataset.wsPath);  // rendered by the server
    socket.onmessage = function (frame) {
      const event = JSON.parse(frame.data);
      if (event.type === "hello") {
        retry = 0;
        connected = true;
        if (everConnected) scheduleRefresh();  // catch up on what changed while away
        setStatus(everConnected ? "resumed" : "live", everConnected ? "live · resumed" : "live");
        everConnected = true;
      } else if (event.type === "session_summary") {
        apply(event);
      } else if (event.type === "session_state") {
        applyState(event);
      }
    };
    socket.onclose = function (close) {
      connected = false;
      if (close.code === 4401) {
        setStatus("offline", "signed out — reload to sign in");
        return;
      }
      setStatus("reconnecting", "reconnecting…");
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, window.SharedContext.reconnectDelay(retry));
    };
  }
  setInterval(function () {
    if (connected && socket.readyState === WebSocket.OPEN) socket.send('{"type":"ping"}');
  }, 30000);
  connect();
})();
