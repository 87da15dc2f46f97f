// The job board: fetches /api/jobs every 2 s and draws it. Every value from the database is set
// with textContent or an attribute, never parsed as HTML: a vendor's message stays text.
"use strict";

const REFRESH_MS = 2000;
const STATES = ["queued", "running", "downloading", "done", "failed", "cancelled"];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// "2026-12-02T02:40:11.123Z" → "2026-12-02 02:40:11".
function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return isNaN(date) ? String(iso) : date.toISOString().slice(0, 19).replace("T", " ");
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
}

function stateCell(job) {
  const cell = el("td", "state");
  cell.append(el("span", "badge " + job.state, job.state));
  if (job.cancel_requested && !["done", "failed", "cancelled"].includes(job.state)) {
    cell.append(el("span", "note", "cancel requested"));
  }
  cell.append(el("code", "id", job.id));
  return cell;
}

function progressCell(job) {
  const cell = el("td", "progress");
  if (job.progress === null || job.progress === undefined) {
    cell.append(el("span", "muted", job.state === "done" ? "100%" : "–"));
    return cell;
  }
  const percent = Math.max(0, Math.min(100, Math.round(job.progress * 100)));
  const bar = el("progress");
  bar.max = 100;
  bar.value = percent;
  cell.append(bar, el("span", "percent", percent + "%"));
  return cell;
}

function timesCell(job) {
  const cell = el("td", "times");
  const rows = [
    ["created", job.created_at],
    ["started", job.started_at],
    ["finished", job.finished_at],
  ];
  if (!job.finished_at && job.next_poll_at) rows.push(["next poll", job.next_poll_at]);
  for (const [label, value] of rows) {
    if (!value && label !== "created") continue;
    const line = el("div");
    line.append(el("span", "label", label), el("time", null, when(value)));
    cell.append(line);
  }
  return cell;
}

function fileCell(job) {
  const cell = el("td", "file");
  cell.append(el("code", "path", job.out));
  if (job.bytes !== null && job.bytes !== undefined) cell.append(el("span", "bytes", size(job.bytes)));
  if (job.sha256) {
    const sha = el("div", "sha");
    sha.append(el("span", "label", "sha256"), el("code", "sha256", job.sha256));
    cell.append(sha);
  }
  return cell;
}

function messageCell(job) {
  const cell = el("td", "message");
  if (job.error) cell.append(el("div", "error", job.error));
  if (job.message && job.message !== job.error) cell.append(el("div", "said", job.message));
  return cell;
}

function row(job) {
  const tr = el("tr", job.state);
  tr.dataset.id = job.id;
  tr.dataset.state = job.state;
  const vendor = el("td", "vendor");
  vendor.append(el("strong", null, job.vendor), el("span", "connection", job.connection));
  tr.append(
    stateCell(job),
    vendor,
    progressCell(job),
    el("td", "polls", job.retries ? job.polls + " (" + job.retries + " retries)" : job.polls),
    timesCell(job),
    fileCell(job),
    messageCell(job),
  );
  return tr;
}

function render(board) {
  const counts = document.getElementById("counts");
  counts.replaceChildren(
    ...STATES.map((state) => {
      const item = el("li", "badge " + state);
      item.append(el("span", null, state + " "), el("b", null, board.counts[state] || 0));
      return item;
    }),
  );
  document.querySelector("#jobs tbody").replaceChildren(...board.jobs.map(row));
  document.getElementById("empty").hidden = board.total > 0;
  const shown = board.jobs.length < board.total ? ", the newest " + board.jobs.length + " shown" : "";
  document.getElementById("status").textContent =
    board.total + " jobs" + shown + " · updated " + when(board.generated_at) + " UTC";
}

function problem(text) {
  const node = document.getElementById("problem");
  node.hidden = !text;
  node.textContent = text || "";
}

async function refresh() {
  try {
    const answer = await fetch("/api/jobs", { cache: "no-store" });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || "HTTP " + answer.status);
    render(body);
    problem(null);
  } catch (e) {
    problem("The board cannot read the jobs (is the worker still running?): " + e.message);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
