// The job page: state, progress while it runs, the event timeline, cancel/retry; once it succeeded the
// video with skeletons, a frame scrubber, the analysis plots with a cursor that follows the video,
// the spins (click to seek), downloads and the way to a comparison.
"use strict";
const { api, el } = window.UI;
const root = document.getElementById("job");
const JOB = Number(root.dataset.jobId);
const FINAL = ["succeeded", "failed", "cancelled"];
let viewer = null, analysis = null, plots = [], currentAnalysis = null, scrubbing = false;

async function refresh() {
  const job = await api(`/v1/jobs/${JOB}`);
  const state = document.getElementById("state");
  state.textContent = job.state + (job.cancel_requested && !FINAL.includes(job.state) ? " (cancel requested)" : "");
  state.className = `state ${job.state}`;
  root.dataset.state = job.state;
  document.getElementById("summary").textContent =
    `${window.UI.videoName(job)} · attempt ${job.attempts.attempt}/${job.attempts.max_attempts} · wait ` +
    `${window.UI.seconds(job.timings.wait_s)} · run ${window.UI.seconds(job.timings.run_s)}` +
    (job.error ? ` · ${job.error.kind}: ${job.error.message}` : "");
  const running = !FINAL.includes(job.state);
  const bar = document.getElementById("progress");
  bar.hidden = !running;
  bar.value = job.progress.percent || 0;
  document.getElementById("progress-text").textContent = running
    ? `${job.progress.frames_done}/${job.progress.frames_total === null ? "?" : job.progress.frames_total} frames` : "";
  document.getElementById("cancel").hidden = !running || job.cancel_requested;
  document.getElementById("retry").hidden = !["failed", "cancelled"].includes(job.state);
  const events = await api(`/v1/jobs/${JOB}/events`);
  document.getElementById("events").replaceChildren(...events.events.map((e) => el("li", { "data-to": e.to_state },
    el("time", {}, e.at.replace("T", " ").slice(0, 19)), " ",
    `${e.from_state || "new"} → ${e.to_state}`, e.attempt ? ` · attempt ${e.attempt}` : "",
    e.worker_id ? ` · ${e.worker_id}` : "", e.error_kind ? el("span", { class: "error" }, ` · ${e.error_kind}: ${e.error_message}`) : "")));
  if (job.kind === "analysis") {  // an analysis job has no video of its own: its pose job's page shows it
    const link = document.getElementById("source-link");
    link.hidden = !job.source_job_id;
    link.href = `/jobs/${job.source_job_id}`;
    link.textContent = `see it on job ${job.source_job_id}`;
  } else if (job.state === "succeeded" && !viewer) await showResult(job);
  return job;
}

async function control(action) {
  try { await api(`/v1/jobs/${JOB}/${action}`, { method: "POST" }); window.UI.banner(""); }
  catch (e) { window.UI.banner(`${action}: ${e.message}`); }
  follow();
}

async function showResult(job) {
  document.getElementById("viewer-section").hidden = false;
  const video = document.getElementById("video");
  video.src = `/v1/jobs/${JOB}/video`;
  video.addEventListener("error", () => window.UI.banner("the video does not play here: this browser cannot decode it " +
    "(browsers play H.264, VP8/VP9 and AV1) or could not load it"));
  viewer = new window.Pose.PoseViewer(video, document.getElementById("overlay"), new window.Pose.PoseSource(JOB), onFrame);
  let doc;
  try { doc = await viewer.start(); } catch (e) {  // e.g. 410 frames_expired: the job stays, its frames went
    window.UI.banner(`result: ${e.message}`);
    return;
  }
  const scrubber = document.getElementById("scrubber");
  scrubber.max = String(Math.max(doc.video.frames - 1, 0));
  scrubber.addEventListener("input", () => viewer.seekFrame(Number(scrubber.value)));
  scrubber.addEventListener("pointerdown", () => { scrubbing = true; });  // the hand, not playback, moves it
  for (const ev of ["pointerup", "change"]) scrubber.addEventListener(ev, () => { scrubbing = false; });
  document.getElementById("play").addEventListener("click", () => { if (video.paused) video.play(); else video.pause(); });
  video.addEventListener("play", () => { document.getElementById("play").textContent = "Pause"; });
  video.addEventListener("pause", () => { document.getElementById("play").textContent = "Play"; });
  const picker = document.getElementById("track-picker");
  picker.addEventListener("change", () => {
    viewer.track = picker.value === "" ? null : Number(picker.value);
    viewer.draw(true);
    drawPlots();
  });
  fillTracks(picker, viewer.source.tracks);
  downloads();
  loadAnalysis(0, doc.video.frames);
}

function fillTracks(picker, tracks) {
  const have = new Set([...picker.options].map((o) => o.value));
  for (const t of [...tracks].sort((a, b) => a - b)) {
    if (have.has(String(t))) continue;
    const o = el("option", { value: String(t) }, `#${t}`);
    o.style.color = window.UI.trackColour(t);
    picker.append(o);
  }
}

let knownTracks = 0;
function onFrame(index) {
  if (viewer && viewer.source.tracks.size !== knownTracks) {  // a window of frames brought new track ids
    knownTracks = viewer.source.tracks.size;
    fillTracks(document.getElementById("track-picker"), viewer.source.tracks);
  }
  document.getElementById("frame-label").textContent = `frame ${index}`;
  const scrubber = document.getElementById("scrubber");
  if (!scrubbing) scrubber.value = String(index);
  for (const p of plots) p.setCursor(index);
  if (analysis && currentAnalysis && analysis.range && (index < analysis.range[0] || index >= analysis.range[1]))
    loadAnalysis(index);
}

async function loadAnalysis(index, total) {
  if (!analysis) analysis = new window.Pose.AnalysisSource(JOB, total);
  const note = document.getElementById("analysis-note");
  try {
    currentAnalysis = await analysis.around(index);
    note.textContent = "";
    const picker = document.getElementById("angle-picker");
    if (!picker.options.length) {
      const chosen = new Set(window.Pose.defaultAngles(currentAnalysis.angle_names));
      for (const n of currentAnalysis.angle_names) picker.append(el("option", { value: n, selected: chosen.has(n) }, n));
      picker.addEventListener("change", drawPlots);
    }
    drawPlots();
  } catch (e) {
    if (e.status === 409) { note.textContent = "the analysis is being computed…"; setTimeout(() => loadAnalysis(index, total), 2000); }
    else if (e.status === 404) note.textContent = "no analysis for this job";
    else note.textContent = `analysis: ${e.message}`;
  }
}

function drawPlots() {
  if (!currentAnalysis) return;
  const track = window.Pose.mainTrack(currentAnalysis, viewer.track);
  if (!track) { document.getElementById("analysis-note").textContent = "the analysis has no track"; return; }
  const names = [...document.getElementById("angle-picker").selectedOptions].map((o) => o.value);
  const P = window.Charts.PALETTE;
  const seek = (f) => viewer.seekFrame(f);
  const range = analysis.range || [];
  const angles = window.Charts.lines(document.getElementById("plot-angles"),
    names.map((n, i) => ({ name: n, colour: P[i % P.length], xs: track.frames, ys: track.angles[n] || [] })),
    { onPick: seek, xMin: range[0], xMax: range[1] === undefined ? undefined : range[1] - 1, legend: true });
  const yaw = window.Charts.lines(document.getElementById("plot-yaw"),
    [{ name: `track #${track.track_id} yaw`, colour: window.UI.trackColour(track.track_id), xs: track.frames, ys: track.yaw || [] }],
    { onPick: seek, marks: (track.spins || []).map((s) => ({ x: s.start_frame, label: `${Math.round(s.degrees)}°` })) });
  plots = [angles, yaw];
  for (const p of plots) p.setCursor(viewer.lastIndex);
  document.getElementById("spins").replaceChildren(...(track.spins || []).map((s) => el("li", {},
    el("button", { class: "linklike spin", onclick: () => seek(s.start_frame) },
      `frames ${s.start_frame}–${s.end_frame}: ${Math.round(s.degrees)}° ${s.direction}`))));
  if (!(track.spins || []).length) document.getElementById("spins").append(el("li", { class: "muted" }, "no spin"));
}

function downloads() {
  const links = { "dl-json": `/v1/jobs/${JOB}/result`, "dl-csv": `/v1/jobs/${JOB}/export?format=csv`,
    "dl-trc": `/v1/jobs/${JOB}/export?format=trc`, "dl-mot": `/v1/jobs/${JOB}/export?format=mot` };
  for (const [id, href] of Object.entries(links)) {
    const a = document.getElementById(id);
    a.href = href;
    a.setAttribute("download", `job-${JOB}.${id.slice(3)}`);
    // with a token, a plain link would go without it: fetch with the header and save the blob
    a.addEventListener("click", async (ev) => {
      if (!window.UI.token()) return;
      ev.preventDefault();
      const r = await fetch(href, { headers: window.UI.headers() });
      if (!r.ok) { window.UI.banner(`download: HTTP ${r.status}`); return; }
      const url = URL.createObjectURL(await r.blob());
      const tmp = el("a", { href: url, download: a.getAttribute("download") });
      document.body.append(tmp); tmp.click(); tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("cancel").addEventListener("click", () => control("cancel"));
  document.getElementById("retry").addEventListener("click", () => control("retry"));
  document.getElementById("compare-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const other = document.getElementById("compare-with").value;
    if (other) location.href = `/compare?a=${JOB}&b=${encodeURIComponent(other)}`;
  });
  follow();
});

// poll until the job is final (again after a retry)
let following = false;
function follow() {
  if (following) return;
  following = true;
  window.UI.poll(async () => {
    let job;
    try { job = await refresh(); } catch (e) {
      if (e.status !== 404) throw e;
      document.getElementById("state").textContent = "not found";  // or another owner's: the same to this token
      window.UI.banner(e.message);
      following = false;
      return false;
    }
    following = !FINAL.includes(job.state);
    return following;
  }, 1000);
}
