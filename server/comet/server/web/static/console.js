// Live job progress: a job page that shows a running job follows its Server-Sent
// Events and reloads once the job ended (for the final status and log). No inline
// script anywhere: the Content-Security-Policy allows only files from /static.
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
  });
  source.addEventListener("end", () => {
    source.close();
    window.location.reload();
  });
}

document.addEventListener("DOMContentLoaded", () => cometFollowJob(document));
document.addEventListener("htmx:load", (event) => cometFollowJob(document));
