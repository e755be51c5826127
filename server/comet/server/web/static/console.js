// Live job progress: a job page that shows a running job follows its Server-Sent
// Events (status and progress) and, once the job ended, swaps in the page's final
// status, counters and log without reloading. No inline script anywhere: the
// Content-Security-Policy allows only files from /static.
"use strict";

function cometSize(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function cometFollowJob(root) {
  const box = root.querySelector ? root.querySelector("[data-job-events]") : null;
  if (!box || box.dataset.following || !window.EventSource) return;
  box.dataset.following = "1";
  const source = new EventSource(box.dataset.jobEvents);
  const field = (name) => box.querySelector(`[data-field=${name}]`);
  source.addEventListener("job", (event) => {
    const job = JSON.parse(event.data);
    const p = job.progress;
    field("progress").textContent = `${cometSize(p.bytes_done)} of ${cometSize(p.bytes_total)}`;
    field("path").textContent = p.current_path;
    field("bar").value = p.bytes_total ? Math.round((100 * p.bytes_done) / p.bytes_total) : 0;
    const status = document.querySelector("h1 [data-field=status]");
    if (status) status.replaceChildren(cometStatus(job.status));
  });
  source.addEventListener("end", () => {
    source.close();
    cometRefreshMain().catch(() => window.location.reload());
  });
}

function cometStatus(name) {
  // As the status macro in macros.html renders it.
  const span = document.createElement("span");
  span.className = `status s-${name.toLowerCase()}`;
  span.textContent = name.toLowerCase().split("_")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join(" ");
  return span;
}

async function cometRefreshMain() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const main = fresh.querySelector("main");
  if (!main) throw new Error("no main element");
  document.querySelector("main").replaceWith(main);
  if (window.htmx) window.htmx.process(main);
}

document.addEventListener("DOMContentLoaded", () => cometFollowJob(document));
document.addEventListener("htmx:load", (event) => cometFollowJob(document));
