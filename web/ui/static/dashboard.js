// The dashboard: queue depth by state, live workers, recent jobs (filterable) with cancel/retry, and
// the history charts; polled from the REST API with the tab's token, so it shows what that token may see.
"use strict";
const { api, el } = window.UI;
const POLL_MS = 1000;
const PENDING = ["queued", "running", "waiting"];
const LIST_MAX = 500;

async function countState(state) {
  const page = await api(`/v1/jobs?state=${state}&limit=${LIST_MAX}`);
  return page.next_cursor ? `${page.jobs.length}+` : String(page.jobs.length);
}

async function refreshQueue() {
  const [counts, pool] = await Promise.all([Promise.all(PENDING.map(countState)), api("/v1/pool")]);
  PENDING.forEach((s, i) => { document.getElementById(`n-${s}`).textContent = counts[i]; });
  document.getElementById("n-ready").textContent = `${pool.queue.ready} ready now (all tenants: ${pool.queue.queued})`;
  document.getElementById("n-workers").textContent = `${pool.busy_workers} / ${pool.live_workers}`;
  document.getElementById("est-wait").textContent = `busy / live; estimated wait ${window.UI.seconds(pool.estimated_wait_s)}`;
  const body = document.querySelector("#workers tbody");
  body.replaceChildren(...pool.workers.map((w) => el("tr", { "data-worker": w.id },
    el("td", { class: "mono" }, w.id), el("td", {}, w.host), el("td", {}, w.gpu || "cpu"), el("td", {}, w.mode),
    el("td", {}, w.current_job ? el("a", { href: `/jobs/${w.current_job.job_id}` }, `#${w.current_job.job_id}`) : "idle"),
    el("td", {}, w.current_job ? window.UI.progressBar(w.current_job.percent) : ""),
    el("td", { class: "error" }, w.problem || ""))));
  if (!pool.workers.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "no live worker")));
}

async function control(id, action) {
  try {
    await api(`/v1/jobs/${id}/${action}`, { method: "POST" });
    window.UI.banner("");
  } catch (e) { window.UI.banner(`${action} job ${id}: ${e.message}`); }
  await refreshJobs();
}

async function refreshJobs() {
  const state = document.getElementById("filter-state").value;
  const text = document.getElementById("filter-text").value.trim().toLowerCase();
  const page = await api(`/v1/jobs?limit=100${state ? "&state=" + state : ""}`);
  const jobs = page.jobs.filter((j) => !text || window.UI.videoName(j).toLowerCase().includes(text));
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...jobs.map((j) => {
    const buttons = [];
    if (["queued", "running", "waiting"].includes(j.state) && !j.cancel_requested)
      buttons.push(el("button", { class: "cancel", onclick: () => control(j.id, "cancel") }, "cancel"));
    if (["failed", "cancelled"].includes(j.state))
      buttons.push(el("button", { class: "retry", onclick: () => control(j.id, "retry") }, "retry"));
    return el("tr", { "data-job": String(j.id), "data-state": j.state },
      el("td", {}, el("a", { href: `/jobs/${j.id}` }, `#${j.id}`)),
      el("td", {}, el("span", { class: `state ${j.state}` }, j.state)),
      el("td", { class: "video" }, window.UI.videoName(j)),
      el("td", {}, window.UI.progressBar(j.progress.percent)),
      el("td", {}, window.UI.seconds(j.timings.wait_s)),
      el("td", {}, window.UI.seconds(j.timings.run_s)),
      el("td", { class: "error" }, j.error ? `${j.error.kind}: ${j.error.message}` : ""),
      el("td", {}, buttons));
  }));
  if (!jobs.length) body.append(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "no jobs")));
}

async function refreshStats() {
  const days = document.getElementById("stats-days").value;
  const stats = await api(`/v1/stats?days=${days}`);
  const daily = stats.daily.slice().sort((a, b) => a.day.localeCompare(b.day));
  const labels = daily.map((d) => d.day);
  const P = window.Charts.PALETTE;
  window.Charts.stackedBars(document.getElementById("chart-outcomes"), labels, [
    { name: "succeeded", colour: P[4], values: daily.map((d) => d.succeeded) },
    { name: "failed", colour: P[2], values: daily.map((d) => d.failed) },
    { name: "cancelled", colour: P[8], values: daily.map((d) => d.cancelled) },
    { name: "pending", colour: P[0], values: daily.map((d) => d.pending) },
  ]);
  const xs = daily.map((_, i) => i);
  window.Charts.lines(document.getElementById("chart-times"), [
    { name: "wait p50", colour: P[0], xs, ys: daily.map((d) => d.wait_p50_s) },
    { name: "wait p95", colour: P[0], xs, ys: daily.map((d) => d.wait_p95_s), dash: "4 3" },
    { name: "run p50", colour: P[1], xs, ys: daily.map((d) => d.run_p50_s) },
    { name: "run p95", colour: P[1], xs, ys: daily.map((d) => d.run_p95_s), dash: "4 3" },
  ], { height: 180, legend: true, xTick: (i) => (labels[i] || "").slice(5) });
  const kinds = [...new Set(stats.failures.map((f) => f.error_kind))];
  window.Charts.stackedBars(document.getElementById("chart-failures"), labels, kinds.map((k, i) => ({
    name: k, colour: P[(i + 2) % P.length],
    values: labels.map((day) => stats.failures.filter((f) => f.day === day && f.error_kind === k).reduce((a, f) => a + f.failures, 0)),
  })));
}

document.addEventListener("DOMContentLoaded", () => {
  window.UI.poll(refreshQueue, POLL_MS);
  window.UI.poll(refreshJobs, POLL_MS);
  window.UI.poll(refreshStats, 15000);
  document.getElementById("job-filter").addEventListener("input", refreshJobs);
  document.getElementById("job-filter").addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("stats-days").addEventListener("change", refreshStats);
});
