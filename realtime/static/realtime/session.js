// Live session page: new messages appear without a refresh, in threads, resumed by seq.
(function () {
  "use strict";
  const list = document.getElementById("messages");
  const status = document.getElementById("status");
  const presence = document.getElementById("presence");
  const jump = document.getElementById("jump");
  const empty = document.getElementById("empty");
  const earlier = document.getElementById("load-earlier");
  if (!list) return;

  const maxDepth = Number(list.dataset.maxDepth) || 4;
  // Close codes after which reconnecting cannot help, and what to say (realtime.live.closecodes.FINAL).
  const finalCloses = JSON.parse(list.dataset.finalCloses || "{}");
  const FOLLOW_SLACK = 80;  // px from the bottom that still counts as "at the bottom"
  let lastSeq = Number(list.dataset.lastSeq) || 0;
  let socket = null;
  let retry = 0;
  let everConnected = false;
  let me = null;
  let following = true;
  let unseen = [];
  let resumedTimer = null;

  // Connection indicator

  function setStatus(state, text) {
    status.dataset.state = state;
    status.className = "status " + state;
    status.querySelector(".label").textContent = text;
  }

  // Presence chips are built here with textContent; a message's HTML is built only by the server
  // (realtime.fragments), sent with the page and with each live frame.

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function avatarClass(name) {
    let sum = 0;
    for (const ch of String(name)) sum += ch.codePointAt(0);
    return "avatar avatar-" + (sum % 8);
  }

  function initial(name) {
    const trimmed = String(name).trim();
    return trimmed ? Array.from(trimmed)[0].toUpperCase() : "?";
  }

  function byId(id) { return list.querySelector('li.message[data-id="' + Number(id) + '"]'); }
  function bySeq(seq) { return document.getElementById("m" + Number(seq)); }

  // A message's <li> from the server's HTML (sanitized there, by realtime.markdown).
  function fromServer(html) {
    return window.SharedContext.fromServer(html, "li.message");
  }

  function depthOf(item) {
    let depth = 0;
    for (let up = item.parentElement.closest("li.message"); up; up = up.parentElement.closest("li.message")) depth++;
    return depth;
  }

  // The one threading rule, for the first render and for everything added later: a message goes
  // under its parent when the parent is on the page (under its nearest ancestor no deeper than
  // maxDepth), else at the top level, at the end or (older messages) before ``before``.
  function place(item, before) {
    const parentId = item.dataset.parentId;
    let parent = parentId ? byId(parentId) : null;
    while (parent && depthOf(parent) >= maxDepth) parent = parent.parentElement.closest("li.message");
    if (!parent) {
      list.insertBefore(item, before || null);
      return;
    }
    let replies = parent.querySelector(":scope > ol.replies");
    if (!replies) {
      replies = el("ol", "replies");
      parent.append(replies);
    }
    replies.append(item);
  }

  // Live and replayed messages, in seq order; a seq already on the page is never added again.
  function receive(event) {
    lastSeq = Math.max(lastSeq, event.seq);
    if (bySeq(event.seq) || !event.html) return;
    const item = fromServer(event.html);
    place(item);
    empty.hidden = true;
    item.classList.add("fresh");
    if (following) {
      scrollToEnd();
    } else {
      unseen.push(item);
      showJump();
    }
  }

  // Auto-scroll while the reader is at the bottom; a marker to jump back otherwise.

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - FOLLOW_SLACK;
  }

  function scrollToEnd() {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function showJump() {
    jump.textContent = unseen.length === 1 ? "1 new message ↓" : unseen.length + " new messages ↓";
    jump.hidden = false;
  }

  function caughtUpWithReading() {
    unseen = [];
    jump.hidden = true;
  }

  window.addEventListener("scroll", function () {
    following = atBottom();
    if (following) caughtUpWithReading();
  }, { passive: true });

  jump.addEventListener("click", function () {
    following = true;
    caughtUpWithReading();
    scrollToEnd();
  });

  // Presence: who else has this session open.

  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  // Staff see every watcher; anyone else sees themselves and how many others there are.
  function showPresence(event) {
    const viewers = event.viewers || [];
    const chips = viewers.map(function (viewer) {
      const isMe = me && viewer.kind === me.kind && viewer.id === me.id;
      const chip = el("li", "chip" + (isMe ? " me" : "") + (viewer.kind === "agent" ? " agent" : ""));
      chip.append(el("span", avatarClass(viewer.id) + " tiny", initial(viewer.id)), el("span", "", viewer.id));
      if (viewer.kind === "agent") chip.title = "agent (" + viewer.agent_type + ")";
      if (isMe) chip.append(el("span", "you", "you"));
      if (viewer.connections > 1) chip.append(el("span", "times", "×" + viewer.connections));
      return chip;
    });
    const listed = function (kind) { return viewers.filter(function (v) { return v.kind === kind; }).length; };
    const people = Math.max(0, (Number(event.people) || 0) - listed("user"));
    const agents = Math.max(0, (Number(event.agents) || 0) - listed("agent"));
    if (people || agents) {
      const others = [];
      if (people) others.push(plural(people, "person", "people"));
      if (agents) others.push(plural(agents, "agent", "agents"));
      chips.push(el("li", "chip others", "+ " + others.join(", ")));
    }
    presence.replaceChildren(...chips);
  }

  // The connection: ?since=<last seq on the page>, so a reconnect replays exactly what was missed.

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    // The server renders the path, so the page works wherever the app is mounted.
    socket = new WebSocket(scheme + location.host + list.dataset.wsPath + "?since=" + lastSeq);
    socket.onmessage = function (frame) {
      const event = JSON.parse(frame.data);
      if (event.type === "new_message") {
        receive(event);
      } else if (event.type === "hello") {
        me = event.viewer;
      } else if (event.type === "caught_up") {
        retry = 0;
        lastSeq = Math.max(lastSeq, Number(event.last_seq) || 0);
        if (everConnected) {
          setStatus("resumed", "resumed");
          clearTimeout(resumedTimer);
          resumedTimer = setTimeout(function () {
            if (status.dataset.state === "resumed") setStatus("live", "live");
          }, 4000);
        } else {
          setStatus("live", "live");
        }
        everConnected = true;
      } else if (event.type === "presence") {
        showPresence(event);
      } else if (event.type === "session_state") {
        // Closed, reopened or renamed by staff: composer.js follows it.
        document.dispatchEvent(new CustomEvent("sharedcontext:session-state", { detail: event }));
      } else if (event.type === "memory" && window.SharedContext.memory) {
        window.SharedContext.memory.apply(event);  // staff only: the memory tab (memory.js)
      }
    };
    socket.onclose = function (close) {
      presence.replaceChildren();
      if (Object.hasOwn(finalCloses, close.code)) {
        setStatus("offline", finalCloses[close.code]);
        return;
      }
      setStatus("reconnecting", "reconnecting…");
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, window.SharedContext.reconnectDelay(retry));
    };
  }

  setInterval(function () {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send('{"type":"ping"}');
  }, 30000);

  // Older messages, on demand.

  if (earlier) {
    earlier.addEventListener("click", function () {
      const url = list.dataset.olderUrl + "?before=" + encodeURIComponent(earlier.dataset.before);
      earlier.disabled = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (body) {
          const top = list.firstElementChild;
          const anchor = document.documentElement.scrollHeight - window.scrollY;
          for (const event of body.messages) {
            if (!bySeq(event.seq)) place(fromServer(event.html), top);
          }
          window.scrollTo(0, document.documentElement.scrollHeight - anchor);
          if (body.has_more && body.messages.length) {
            earlier.dataset.before = String(body.messages[0].seq);
            earlier.disabled = false;
          } else {
            earlier.parentElement.remove();
          }
        })
        .catch(function () { earlier.disabled = false; });
    });
  }

  // For the page's other scripts (composer.js): show a message this page stored itself, before its live
  // frame comes; that frame (same seq) is then skipped. lastSeq is left as it was, so a reconnect still
  // asks for every message before it.
  window.SharedContext.session = {
    lastSeq: function () { return lastSeq; },
    show: function (event) {
      const seen = lastSeq;
      receive(event);
      lastSeq = seen;
    },
  };

  // Markdown or the text as it was written, for the whole page.

  const plain = document.getElementById("plain-toggle");
  if (plain) {
    plain.addEventListener("click", function () {
      const on = list.classList.toggle("show-plain");
      plain.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  // The first render comes flat, in seq order: thread it by the same rule as what arrives later.
  for (const item of Array.from(list.children)) place(item);
  following = true;
  scrollToEnd();
  connect();
})();
