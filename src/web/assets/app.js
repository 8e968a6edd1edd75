// inboxgate web inbox: live updates (server-sent events) and keyboard shortcuts.
// Everything works without this script; it only saves reloads and keystrokes.
(function () {
  "use strict";

  // Selects that apply themselves when changed (inbox switcher, sort, assignee).
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("select[data-autosubmit]") && t.form) t.form.submit();
  });

  function typing() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT" || a.isContentEditable);
  }

  function drafting() {
    var boxes = document.querySelectorAll("textarea");
    for (var i = 0; i < boxes.length; i++) if (boxes[i].value.trim() !== "") return true;
    return typing();
  }

  // Replaces the live regions (the list, the thread) and the view counts with the
  // server's current page, keeping the selected row.
  var refreshing = false;
  function refresh() {
    if (refreshing) return;
    if (document.getElementById("thread") && drafting()) {
      var note = document.getElementById("live-note");
      if (note) note.hidden = false;
      return;
    }
    refreshing = true;
    fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      // This conversation was merged into another: go there.
      if (r.ok && r.redirected && document.getElementById("thread")) {
        location.replace(r.url);
        return null;
      }
      return r.ok ? r.text() : null;
    }).then(function (text) {
      refreshing = false;
      if (!text) return;
      var fresh = new DOMParser().parseFromString(text, "text/html");
      var selected = document.querySelector("tr.sel");
      var selectedId = selected && selected.getAttribute("data-id");
      document.querySelectorAll("[data-live-region]").forEach(function (old) {
        var now = old.id && fresh.getElementById(old.id);
        if (now) old.replaceWith(document.importNode(now, true));
      });
      var oldViews = document.querySelectorAll(".sidebar .views");
      var newViews = fresh.querySelectorAll(".sidebar .views");
      for (var i = 0; i < oldViews.length && i < newViews.length; i++) {
        oldViews[i].innerHTML = newViews[i].innerHTML;
      }
      if (selectedId) select(document.querySelector('tr[data-id="' + selectedId + '"]'));
      document.body.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function () { refreshing = false; });
  }

  // Presence: this page says it is viewing the conversation (on open, then every
  // 10 s) or replying (while the reply box holds text); others' reports arrive as
  // `presence` events and show as "Bob is viewing" / "Bob is replying".
  var presence = document.getElementById("presence");
  function showPresence(others) {
    if (!presence) return;
    presence.textContent = "";
    others.forEach(function (o) {
      var li = document.createElement("li");
      li.className = o.doing;
      var text = presence.getAttribute(o.doing === "replying" ? "data-replying" : "data-viewing");
      li.textContent = text.split("{name}").join(o.name);
      presence.appendChild(li);
    });
  }
  var doing = null;
  function report(now) {
    if (!presence) return;
    var replyBox = document.getElementById("reply");
    var state = now || (replyBox && replyBox.value.trim() !== "" ? "replying" : "viewing");
    doing = state;
    var body = new URLSearchParams({ csrf: presence.getAttribute("data-csrf"), doing: state });
    var url = presence.getAttribute("data-report");
    if (state === "gone" && navigator.sendBeacon) { navigator.sendBeacon(url, body); return; }
    fetch(url, { method: "POST", body: body, credentials: "same-origin" }).catch(function () {});
  }
  if (presence) {
    setTimeout(report, 0); // after a kept draft is back in the reply box
    setInterval(function () { report(); }, 10000);
    document.addEventListener("input", function (e) {
      if (e.target && e.target.id === "reply") {
        var now = e.target.value.trim() !== "" ? "replying" : "viewing";
        if (now !== doing) report(now);
      }
    });
    window.addEventListener("pagehide", function () { report("gone"); });
    // Signing out ends the session the pagehide report would need: leave first.
    document.addEventListener("submit", function (e) {
      if (e.target.getAttribute("action") === "/sign-out") report("gone");
    });
  }

  var app = document.querySelector(".app[data-live]");
  if (app && window.EventSource) {
    var source = new EventSource(presence ? presence.getAttribute("data-events") : app.getAttribute("data-live"));
    source.addEventListener("change", refresh);
    source.addEventListener("presence", function (e) {
      try { showPresence(JSON.parse(e.data)); } catch (err) { /* a bad event changes nothing */ }
    });
    // Free the connection when the page goes (browsers allow few per host).
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // Drafts: the reply and comment boxes are kept in this browser, per agent and
  // conversation, as the agent types (listeners on the document, so boxes a live
  // refresh puts in place are kept too), and come back after a reload. A draft goes
  // once its form was sent and the page that follows shows the box empty again (a
  // refused post or a held reply keeps it); signing out forgets every draft.
  var DRAFT = "inboxgate-draft:";
  var SENDING = "inboxgate-sending";
  var store = window.localStorage, session = window.sessionStorage;
  function draftKey(box) {
    if (!box || (box.id !== "reply" && box.id !== "comment")) return null;
    var me = app ? app.getAttribute("data-me") : "";
    return DRAFT + me + ":" + location.pathname + ":" + box.id;
  }
  if (store && session) {
    ["reply", "comment"].forEach(function (id) {
      var box = document.getElementById(id), key = draftKey(box);
      if (!key) return;
      if (session.getItem(SENDING) === key && !box.value) {
        store.removeItem(key);
        session.removeItem(SENDING);
      } else if (!box.value) {
        box.value = store.getItem(key) || "";
      }
    });
    document.addEventListener("input", function (e) {
      var key = draftKey(e.target);
      if (!key) return;
      if (e.target.value) store.setItem(key, e.target.value); else store.removeItem(key);
    });
    document.addEventListener("submit", function (e) {
      if (e.target.getAttribute("action") === "/sign-out") {
        Object.keys(store).forEach(function (k) { if (k.indexOf(DRAFT) === 0) store.removeItem(k); });
        return;
      }
      var box = e.target.querySelector("#reply, #comment");
      var key = draftKey(box);
      if (key) session.setItem(SENDING, key);
    });
  }

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-id]")); }
  function select(row) {
    rows().forEach(function (r) { r.classList.remove("sel"); });
    if (!row) return;
    row.classList.add("sel");
    row.scrollIntoView({ block: "nearest" });
  }
  function move(step) {
    var list = rows();
    if (!list.length) return;
    var at = list.indexOf(document.querySelector("tr.sel"));
    select(list[Math.max(0, Math.min(list.length - 1, at + step))]);
  }
  function focus(id) {
    var el = document.getElementById(id);
    if (el) { el.focus(); return true; }
    return false;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") {
      var d = document.getElementById("shortcuts");
      if (d && d.open) d.close();
      if (typing()) document.activeElement.blur();
      return;
    }
    if (typing()) return;
    var handled = true;
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter":
        if (document.activeElement && document.activeElement.closest("a, button, summary")) { handled = false; break; }
        // falls through
      case "o": {
        var row = document.querySelector("tr.sel a");
        if (row) location.href = row.getAttribute("href"); else handled = false;
        break;
      }
      case "r": handled = focus("reply"); break;
      case "c": handled = focus("comment"); break;
      case "/": handled = focus("q"); break;
      case "a": {
        var owner = document.getElementById("assignee");
        var me = app && app.getAttribute("data-me");
        if (owner && me && owner.querySelector('option[value="' + me + '"]')) {
          owner.value = me;
          owner.form.submit();
        } else handled = false;
        break;
      }
      case "e": {
        var close = document.querySelector('button[data-key="e"]');
        if (close) close.click(); else handled = false;
        break;
      }
      case "?": {
        var dialog = document.getElementById("shortcuts");
        if (dialog && dialog.showModal) dialog.showModal(); else handled = false;
        break;
      }
      default: handled = false;
    }
    if (handled) e.preventDefault();
  });
})();
