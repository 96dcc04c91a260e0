// What the pages do in the browser besides live updates (live.js): copy buttons, keyboard
// navigation of the runs list, and relative times kept current. Every page works without it:
// the copy buttons stay hidden, links and forms work as they are.
"use strict";

(function () {
  // Copy buttons: `data-copy` holds the text, `data-copy-from` the id of an element holding it.
  function showCopyButtons(root) {
    if (!navigator.clipboard) return;
    for (const button of root.querySelectorAll("button.copy[hidden]")) button.hidden = false;
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const source = button.dataset.copyFrom && document.getElementById(button.dataset.copyFrom);
    const text = source ? source.textContent : button.dataset.copy;
    navigator.clipboard.writeText(text).then(function () {
      button.classList.add("copied");
      button.dataset.copied = "true";
      setTimeout(function () { button.classList.remove("copied"); }, 1200);
    });
  });

  // The same rules as the server's `relative_text` (ui/times.rs), as time passes.
  function relative(time, now) {
    const seconds = Math.round((now - time) / 1000);
    const magnitude = Math.abs(seconds);
    let amount;
    if (magnitude < 5) return "just now";
    else if (magnitude < 60) amount = magnitude + " s";
    else if (magnitude < 3600) amount = Math.floor(magnitude / 60) + " min";
    else if (magnitude < 86400) amount = Math.floor(magnitude / 3600) + " h";
    else amount = Math.floor(magnitude / 86400) + " d";
    return seconds >= 0 ? amount + " ago" : "in " + amount;
  }
  function refreshTimes() {
    const now = Date.now();
    for (const element of document.querySelectorAll("time[data-relative]")) {
      const time = Date.parse(element.getAttribute("datetime"));
      if (!Number.isNaN(time)) element.textContent = relative(time, now);
    }
  }

  // j/k (or the arrow keys) move through the runs list, Enter opens the selected run.
  function rows() {
    return Array.from(document.querySelectorAll("table#runs tbody tr"));
  }
  function select(row) {
    for (const other of document.querySelectorAll("table#runs tbody tr.selected")) {
      other.classList.remove("selected");
    }
    if (!row) return;
    row.classList.add("selected");
    row.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, select, textarea, button, [contenteditable]")) return;
    const all = rows();
    if (all.length === 0) return;
    const current = all.findIndex(function (row) { return row.classList.contains("selected"); });
    if (event.key === "j" || event.key === "ArrowDown") {
      select(all[Math.min(current + 1, all.length - 1)]);
      event.preventDefault();
    } else if (event.key === "k" || event.key === "ArrowUp") {
      select(all[Math.max(current - 1, 0)]);
      event.preventDefault();
    } else if (event.key === "Enter" && current >= 0) {
      const link = all[current].querySelector("a.run-link");
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    showCopyButtons(document);
    refreshTimes();
    setInterval(refreshTimes, 15000);
    // Rows and articles a live update puts in carry their own hidden copy buttons.
    new MutationObserver(function () { showCopyButtons(document); })
      .observe(document.body, { childList: true, subtree: true });
  });
})();
