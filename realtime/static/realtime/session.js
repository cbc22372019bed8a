// Live session page: appends new messages without a refresh, resumes by seq.
(function () {
  "use strict";
  const list = document.getElementById("messages");
  const status = document.getElementById("status");
  if (!list) return;
  const sessionId = list.dataset.sessionId;
  let lastSeq = Number(list.dataset.lastSeq) || 0;
  let retry = 0;
  let everConnected = false;

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = "status " + kind;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // always text, never HTML
    return node;
  }

  function render(event) {
    const data = event.data;
    const item = el("li", "message");
    item.dataset.seq = String(event.seq);
    const head = el("div", "head");
    head.append(el("span", "sender", data.sender), " ", el("span", "type", data.sender_type), " ",
      el("span", "badge " + data.visibility, data.visibility), " ");
    const time = el("time", "", new Date(data.timestamp).toLocaleTimeString());
    time.dateTime = data.timestamp;
    head.append(time, " ", el("span", "seq", "#" + event.seq));
    item.append(head, el("div", "content", data.content));
    return item;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/" + sessionId + "/?since=" + lastSeq);
    socket.onopen = function () { retry = 0; };
    socket.onmessage = function (frame) {
      const event = JSON.parse(frame.data);
      if (event.type === "new_message" && event.seq > lastSeq) {
        const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
        list.append(render(event));
        lastSeq = event.seq;
        if (atBottom) window.scrollTo(0, document.body.scrollHeight);
      } else if (event.type === "caught_up") {
        setStatus(everConnected ? "live (resumed)" : "live", "live");
        everConnected = true;
      }
    };
    socket.onclose = function () {
      setStatus("reconnecting…", "reconnecting");
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);
    };
  }
  connect();
})();
