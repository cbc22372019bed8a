// Session page, what people do: the composer (post, reply), and the session's state followed live.
// Kept apart from session.js: a posted message is shown through session.js's own live path
// (window.SharedContext.session.show), so it looks exactly like every other message.
(function () {
  "use strict";
  const form = document.getElementById("composer");
  const list = document.getElementById("messages");
  if (!form || !list) return;
  const content = form.elements.content;
  const parentField = form.elements.parent_message_id;
  const fields = document.getElementById("composer-fields");
  const errorBox = document.getElementById("composer-error");
  const replying = document.getElementById("replying");
  const OWN_FRAME_WAIT = 1500;  // ms a post waits for earlier messages' frames before it is shown anyway
  let sending = false;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  // Reply: a button on every message, whoever built it (first render, live, "load earlier").

  function addReplyButton(item) {
    const head = item.querySelector(":scope > .bubble > .head") || item.querySelector(":scope > .bubble");
    if (!head || head.querySelector(":scope > button.reply")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reply";
    button.textContent = "Reply";
    head.append(button);
  }

  function addReplyButtons(node) {
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    if (node.matches("li.message")) addReplyButton(node);
    node.querySelectorAll("li.message").forEach(addReplyButton);
  }

  addReplyButtons(list);
  new MutationObserver(function (changes) {
    for (const change of changes) change.addedNodes.forEach(addReplyButtons);
  }).observe(list, { childList: true, subtree: true });

  function replyTo(item) {
    if (!item) {
      parentField.value = "";
      replying.hidden = true;
      return;
    }
    parentField.value = item.dataset.id;
    const link = replying.querySelector("a");
    link.textContent = "#" + item.dataset.seq;
    link.href = "#m" + item.dataset.seq;
    replying.hidden = false;
    content.focus();
  }

  list.addEventListener("click", function (event) {
    const button = event.target.closest("button.reply");
    if (button) replyTo(button.closest("li.message"));
  });
  document.getElementById("cancel-reply").addEventListener("click", function () { replyTo(null); });

  // Sending: Enter sends, Shift+Enter is a new line; errors show inline and the text stays.

  content.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // Shown as soon as the server answers; if earlier messages have not arrived yet, their frames get a
  // moment to come first, so the order stays that of seq. Shown once either way (by seq).
  function showOwn(event) {
    const session = window.SharedContext.session;
    if (!session) return;  // the live frame shows it
    if (event.seq <= session.lastSeq() + 1) {
      session.show(event);
    } else {
      setTimeout(function () { session.show(event); }, OWN_FRAME_WAIT);
    }
  }

  function answerOf(response) {
    return response.json()
      .catch(function () { return { success: false, error: "The server answered " + response.status + "." }; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending || fields.disabled) return;
    if (!content.value.trim()) {
      showError("Write something first.");
      return;
    }
    sending = true;
    const body = new FormData(form);
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": body.get("csrfmiddlewaretoken") },
    })
      .then(answerOf)
      .then(function (answer) {
        if (answer.success) {
          content.value = "";
          replyTo(null);
          showError("");
          showOwn(answer.message);
        } else {
          showError(answer.error + (answer.hint ? " " + answer.hint : ""));
        }
      })
      .catch(function () { showError("Not sent: the server could not be reached. Your text is kept."); })
      .finally(function () { sending = false; });
  });

  // The session's state, live: closed (no composer), reopened, renamed.

  function showState(closed) {
    fields.disabled = closed;
    document.getElementById("composer-closed").hidden = !closed;
    document.getElementById("closed-badge").hidden = !closed;
    const close = document.getElementById("close-form");
    const reopen = document.getElementById("reopen-form");
    if (close) close.hidden = closed;
    if (reopen) reopen.hidden = !closed;
  }

  document.addEventListener("sharedcontext:session-state", function (event) {
    const data = event.detail.data;
    showState(!data.is_active);
    const heading = document.querySelector(".session-head h1");
    if (heading) heading.textContent = data.purpose;
    const purpose = document.getElementById("purpose-form");
    if (purpose) purpose.elements.purpose.value = data.purpose;
  });
})();
