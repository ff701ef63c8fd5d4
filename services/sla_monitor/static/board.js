// The ops board's script: live rows from the server's events, a countdown, acknowledgements.
// The server makes each row's words (services/sla_monitor/board_view.py); this copies them into
// the cells, keeps the open clocks counting down, and posts acknowledgements with the page's
// CSRF token. No library, no inline script (the page's Content-Security-Policy forbids it).
"use strict";

(function () {
  const board = document.getElementById("board");
  if (!board) {
    return;
  }
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const live = document.getElementById("live");
  const message = document.getElementById("message");
  const DAY_MS = 24 * 3600 * 1000;
  const tables = {
    open: { body: document.getElementById("open-rows"), template: document.getElementById("open-row") },
    breach: { body: document.getElementById("breach-rows"), template: document.getElementById("breach-row") },
  };

  // The same words as board_view.time_left.
  function timeLeft(seconds) {
    const whole = Math.floor(Math.abs(seconds));
    const sign = seconds < 0 && whole ? "-" : "";
    const pad = (n) => String(n).padStart(2, "0");
    if (whole >= 86400) return `${sign}${Math.floor(whole / 86400)}d ${pad(Math.floor((whole % 86400) / 3600))}h`;
    if (whole >= 3600) return `${sign}${Math.floor(whole / 3600)}h ${pad(Math.floor((whole % 3600) / 60))}m`;
    return `${sign}${Math.floor(whole / 60)}m ${pad(whole % 60)}s`;
  }

  function fill(tr, row) {
    tr.dataset.clockId = row.id;
    tr.dataset.deadline = row.deadline_iso;
    tr.dataset.breached = row.breached_iso;
    tr.dataset.tone = row.tone;
    tr.dataset.open = row.open ? "1" : "";
    tr.querySelectorAll("[data-field]").forEach((cell) => {
      cell.textContent = row[cell.dataset.field];
    });
    const button = tr.querySelector("button[data-ack]");
    if (button) {
      button.hidden = !row.ackable;
      button.disabled = false;
    }
  }

  function place(body, tr, before) {
    const next = Array.from(body.children).find((other) => before(tr, other));
    body.insertBefore(tr, next || null);
  }

  function upsert(table, row, keep, before) {
    const existing = table.body.querySelector(`tr[data-clock-id="${row.id}"]`);
    if (!keep) {
      if (existing) existing.remove();
      return;
    }
    if (existing) {
      fill(existing, row);
      return;
    }
    const tr = table.template.content.firstElementChild.cloneNode(true);
    fill(tr, row);
    tr.classList.add("fresh");
    place(table.body, tr, before);
  }

  function showEmpty() {
    document.querySelectorAll("[data-empty-for]").forEach((note) => {
      note.hidden = document.getElementById(note.dataset.emptyFor).children.length > 0;
    });
  }

  function apply(row) {
    const byDeadline = (tr, other) => Date.parse(other.dataset.deadline) > Date.parse(tr.dataset.deadline);
    const latestBreachFirst = (tr, other) => Date.parse(other.dataset.breached) < Date.parse(tr.dataset.breached);
    const recent = row.breached_iso !== "" && Date.now() - Date.parse(row.breached_iso) < DAY_MS;
    upsert(tables.open, row, row.open, byDeadline);
    upsert(tables.breach, row, recent, latestBreachFirst);
    showEmpty();
    tick();
  }

  function tick() {
    const now = Date.now();
    tables.open.body.querySelectorAll("tr[data-open='1']").forEach((tr) => {
      const seconds = (Date.parse(tr.dataset.deadline) - now) / 1000;
      tr.querySelector("[data-left]").textContent = timeLeft(seconds);
      tr.dataset.overdue = seconds < 0 ? "1" : "";
    });
  }

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function connect() {
    const source = new EventSource(board.dataset.stream);
    source.addEventListener("open", () => {
      live.dataset.state = "open";
      live.textContent = "live";
    });
    source.addEventListener("clock", (event) => apply(JSON.parse(event.data).row));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        live.dataset.state = "closed";
        live.textContent = "disconnected: reload the page (you may need to sign in again)";
      } else {
        live.dataset.state = "connecting";
        live.textContent = "reconnecting…";
      }
    });
  }

  async function acknowledge(button) {
    const id = button.closest("tr").dataset.clockId;
    button.disabled = true;
    say("");
    const response = await fetch(`/ops/sla/clocks/${encodeURIComponent(id)}/acknowledge`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ note: "" }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      button.disabled = false;
      say(`Not acknowledged: ${body.detail || body.title || response.status}`);
      return;
    }
    // The stream brings the clock's new row within a second; show it at once (the same words
    // as board_view's status).
    document.querySelectorAll(`tr[data-clock-id="${id}"]`).forEach((tr) => {
      tr.dataset.tone = "acknowledged";
      tr.querySelector("[data-field='status']").textContent = `acknowledged by ${body.acknowledged_by}`;
      const ack = tr.querySelector("button[data-ack]");
      if (ack) ack.hidden = true;
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-ack]");
    if (button) {
      acknowledge(button).catch((error) => {
        button.disabled = false;
        say(`Not acknowledged: ${error}`);
      });
    }
  });

  showEmpty();
  tick();
  setInterval(tick, 1000);
  connect();
})();
