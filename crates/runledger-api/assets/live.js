// Live updates of the monitoring pages, over server-sent events. Every page works without this
// script; it only keeps the runs list and an active run's page current without a reload. The
// server sends HTML it rendered and escaped itself, so it is put into the page as it is.
"use strict";

(function () {
  function setLive(state) {
    document.body.dataset.live = state;
  }

  function listen(url, handlers) {
    const source = new EventSource(url);
    source.onopen = function () { setLive("open"); };
    source.onerror = function () {
      // EventSource connections by itself, sending Last-Event-ID; CLOSED means it gave up.
      setLive(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    };
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, function (event) { handler(event, source); });
    }
    return source;
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function flash(row) {
    row.classList.add("changed");
    setTimeout(function () { row.classList.remove("changed"); }, 1200);
  }

  const runs = document.querySelector("table#runs[data-live-url]");
  if (runs) {
    const body = runs.tBodies[0];
    const firstPage = runs.dataset.firstPage === "true";
    listen(runs.dataset.liveUrl, {
      run: function (event) {
        const update = JSON.parse(event.data);
        const current = document.getElementById("run-" + update.id);
        if (update.html === null) {
          // The run no longer passes this page's filters.
          if (current) current.remove();
          return;
        }
        const row = fragment(update.html);
        if (current) {
          current.replaceWith(row);
        } else if (firstPage) {
          // New runs are the newest: they belong at the top of the first page.
          body.prepend(row);
          const empty = document.getElementById("no-runs");
          if (empty) empty.remove();
        } else {
          return;
        }
        flash(row);
      },
    });
  }

  const run = document.querySelector("article#run[data-live-url]");
  if (run) {
    listen(run.dataset.liveUrl, {
      run: function (event) {
        const current = document.getElementById("run");
        if (!current) return;
        // Timeline rows the reader opened stay open across the update.
        const open = Array.from(current.querySelectorAll("li.timeline-event details[open]"))
          .map(function (details) { return details.parentElement.dataset.version; });
        const next = fragment(event.data);
        for (const version of open) {
          const details = next.querySelector('li.timeline-event[data-version="' + version + '"] details');
          if (details) details.open = true;
        }
        current.replaceWith(next);
      },
      end: function (event, source) {
        source.close();
        setLive("closed");
      },
    });
  }
})();
