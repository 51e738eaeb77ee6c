// postdesk web desk: keyboard shortcuts on top of plain forms (everything works without this file).
(function () {
  "use strict";
  function typing(event) {
    var tag = (event.target && event.target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.target.isContentEditable;
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.ticket")); }
  function move(step) {
    var all = rows(); if (!all.length) return;
    var at = all.findIndex(function (r) { return r.classList.contains("current"); });
    var next = Math.min(Math.max(at + step, 0), all.length - 1);
    if (at >= 0) all[at].classList.remove("current");
    all[next].classList.add("current");
    all[next].scrollIntoView({block: "nearest"});
    var link = all[next].querySelector("td.mask a"); if (link) link.focus();
  }
  function focus(id) { var el = document.getElementById(id); if (el) { el.focus(); return true; } return false; }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    var handled = true;
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter":
        var current = document.querySelector("tr.ticket.current td.mask a");
        if (current) window.location = current.href; else handled = false;
        break;
      case "r": handled = focus("reply-text"); break;
      case "c": handled = focus("comment-text"); break;
      case "e": var close = document.getElementById("close"); if (close) close.click(); else handled = false; break;
      case "/": handled = focus("q"); break;
      case "?": var help = document.getElementById("help"); help.hidden = !help.hidden; break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });
  // The list refreshes itself every 20 s: new mail shows up; the boxes ticked and the current row stay.
  var table = document.getElementById("tickets");
  if (table && window.fetch) {
    setInterval(function () {
      var ticked = {}, current = null;
      rows().forEach(function (row) {
        var box = row.querySelector("input[name=mask]");
        if (box && box.checked) ticked[row.dataset.mask] = true;
        if (row.classList.contains("current")) current = row.dataset.mask;
      });
      var url = window.location.pathname + window.location.search + (window.location.search ? "&" : "?") + "fragment=rows";
      fetch(url, {credentials: "same-origin"}).then(function (answer) {
        if (!answer.ok) return null;
        var badge = answer.headers.get("x-badge");
        var shown = document.getElementById("badge");
        if (shown && badge !== null) shown.textContent = badge;
        return answer.text();
      }).then(function (html) {
        if (html === null || html === undefined) return;
        table.tBodies[0].innerHTML = html;
        rows().forEach(function (row) {
          var box = row.querySelector("input[name=mask]");
          if (box && ticked[row.dataset.mask]) box.checked = true;
          if (row.dataset.mask === current) row.classList.add("current");
        });
      }).catch(function () { /* offline for a moment: the next round tries again */ });
    }, 20000);
  }
})();
