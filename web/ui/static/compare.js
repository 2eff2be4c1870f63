// Compare two attempts: side by side, time-aligned (a chosen event, or dynamic time warping of their
// angle series), angle curves overlaid on A's time, and the differences at key moments.
"use strict";
const { api, el } = window.UI;
const box = document.getElementById("compare");
const IDS = { a: Number(box.dataset.a), b: Number(box.dataset.b) };
const DTW_POINTS = 400;  // series are resampled to at most this many points: DTW is O(n·m)
const sides = {};
let mapAtoB = (f) => f, plot = null;

// dynamic time warping of two series (nulls filled from neighbours); returns for each index of x the
// mean matched index of y
function dtw(x, y) {
  const n = x.length, m = y.length, INF = Infinity;
  const D = new Float64Array((n + 1) * (m + 1)).fill(INF);
  D[0] = 0;
  for (let i = 1; i <= n; i++) for (let j = 1; j <= m; j++) {
    const c = Math.abs(x[i - 1] - y[j - 1]);
    D[i * (m + 1) + j] = c + Math.min(D[(i - 1) * (m + 1) + j], D[i * (m + 1) + j - 1], D[(i - 1) * (m + 1) + j - 1]);
  }
  const sum = new Float64Array(n), cnt = new Float64Array(n);
  let i = n, j = m;
  while (i > 0 && j > 0) {
    sum[i - 1] += j - 1; cnt[i - 1] += 1;
    const diag = D[(i - 1) * (m + 1) + j - 1], up = D[(i - 1) * (m + 1) + j], left = D[i * (m + 1) + j - 1];
    if (diag <= up && diag <= left) { i--; j--; } else if (up < left) i--; else j--;
  }
  return Array.from(sum, (s, k) => s / Math.max(cnt[k], 1));
}

function filled(values) {
  const out = values.slice();
  let last = null;
  for (let k = 0; k < out.length; k++) { if (out[k] === null || !Number.isFinite(out[k])) out[k] = last; else last = out[k]; }
  const first = out.find((v) => v !== null);
  return out.map((v) => (v === null ? (first === undefined ? 0 : first) : v));
}

function resample(track, name) {
  const vals = filled(track.angles[name] || []), step = Math.max(1, Math.ceil(vals.length / DTW_POINTS));
  const xs = [], ys = [];
  for (let k = 0; k < vals.length; k += step) { xs.push(track.frames[k]); ys.push(vals[k]); }
  return { xs, ys };
}

function interp(xs, ys, x) {
  if (x <= xs[0]) return ys[0];
  for (let k = 1; k < xs.length; k++) if (x <= xs[k]) return ys[k - 1] + (ys[k] - ys[k - 1]) * (x - xs[k - 1]) / (xs[k] - xs[k - 1]);
  return ys[ys.length - 1];
}

const EVENTS = { spin: "first spin", peak: "highest", low: "lowest" };

// the frame of an event in a track's analysis: its first spin's start, or its angle's extreme
function eventFrame(track, how, name) {
  if (how === "spin") return (track.spins || []).length ? track.spins[0].start_frame : null;
  const values = track.angles[name] || [];
  let best = null;
  values.forEach((v, k) => {
    if (v === null || !Number.isFinite(v)) return;
    if (best === null || (how === "peak" ? v > values[best] : v < values[best])) best = k;
  });
  return best === null ? null : track.frames[best];
}

function align() {
  const how = document.getElementById("align-by").value, name = document.getElementById("compare-angle").value;
  const A = sides.a.track, B = sides.b.track, note = document.getElementById("align-note");
  const clampB = (f) => Math.max(0, Math.min(Math.round(f), sides.b.frames - 1));
  if (how === "dtw" && A && B && name) {
    const ra = resample(A, name), rb = resample(B, name);
    const matched = dtw(ra.ys, rb.ys).map((j) => interp(rb.xs.map((_, k) => k), rb.xs, j));
    mapAtoB = (f) => clampB(interp(ra.xs, matched, f));
    note.textContent = `warped on ${name}`;
  } else if (how !== "start" && A && B && eventFrame(A, how, name) !== null && eventFrame(B, how, name) !== null) {
    const offset = eventFrame(B, how, name) - eventFrame(A, how, name);
    mapAtoB = (f) => clampB(f + offset);
    note.textContent = `B shifted by ${offset} frames (${EVENTS[how]}${how === "spin" ? "" : " " + name})`;
  } else {
    mapAtoB = (f) => clampB(f * sides.b.fps / sides.a.fps);
    note.textContent = how === "start" ? "aligned at the start" : `no ${EVENTS[how]} in both: aligned at the start`;
  }
  draw();
}

function draw() {
  const name = document.getElementById("compare-angle").value, A = sides.a.track, B = sides.b.track;
  if (!A || !B || !name) { document.getElementById("align-note").textContent = "no analysis to compare"; return; }
  const bAtA = A.frames.map((f) => window.Pose.seriesAt(B, B.angles[name] || [], mapAtoB(f)));
  plot = window.Charts.lines(document.getElementById("plot-compare"), [
    { name: `A: job ${IDS.a}`, colour: window.Charts.PALETTE[0], xs: A.frames, ys: A.angles[name] || [] },
    { name: `B: job ${IDS.b} (aligned)`, colour: window.Charts.PALETTE[1], xs: A.frames, ys: bAtA, dash: "5 3" },
  ], { onPick: (f) => sides.a.viewer.seekFrame(f), legend: true });
  plot.setCursor(Math.max(sides.a.viewer.lastIndex, 0));
  const aVals = A.angles[name] || [];
  const moments = [["start", A.frames[0]], ["end", A.frames[A.frames.length - 1]]];
  const finite = aVals.map((v, k) => [v, k]).filter(([v]) => v !== null && Number.isFinite(v));
  if (finite.length) {
    const lo = finite.reduce((p, q) => (q[0] < p[0] ? q : p)), hi = finite.reduce((p, q) => (q[0] > p[0] ? q : p));
    moments.push([`lowest ${name}`, A.frames[lo[1]]], [`highest ${name}`, A.frames[hi[1]]]);
  }
  (A.spins || []).forEach((s, k) => moments.push([`spin ${k + 1} start`, s.start_frame], [`spin ${k + 1} end`, s.end_frame]));
  moments.sort((p, q) => p[1] - q[1]);
  document.querySelector("#differences tbody").replaceChildren(...moments.map(([label, fa]) => {
    const fb = mapAtoB(fa), va = window.Pose.seriesAt(A, aVals, fa), vb = window.Pose.seriesAt(B, B.angles[name] || [], fb);
    const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));
    return el("tr", { class: "moment", onclick: () => sides.a.viewer.seekFrame(fa) }, el("td", {}, label), el("td", {}, fa),
      el("td", {}, fb), el("td", {}, fmt(va)), el("td", {}, fmt(vb)), el("td", {}, va !== null && vb !== null ? fmt(vb - va) : "–"));
  }));
}

function follow(index) {  // A's frame drives B's and the cursor
  const scrubber = document.getElementById("compare-scrubber");
  if (!scrubber.matches(":active")) scrubber.value = String(index);  // unless the hand holds it
  if (plot) plot.setCursor(index);
  if (!sides.b) return;  // B is still being set up
  const vb = sides.b.viewer, want = mapAtoB(index);
  if (vb.doc && vb.index() !== want && !vb.video.seeking) vb.seekFrame(want);
}

async function setUp(key) {
  const node = document.getElementById(`side-${key}`);
  const video = node.querySelector("video"), canvas = node.querySelector("canvas");
  video.src = `/v1/jobs/${IDS[key]}/video`;
  const viewer = new window.Pose.PoseViewer(video, canvas, new window.Pose.PoseSource(IDS[key]), key === "a" ? follow : null);
  const doc = await viewer.start();
  let analysis = null;
  try { analysis = await api(`/v1/jobs/${IDS[key]}/analysis`); } catch (e) { analysis = null; }
  sides[key] = { viewer, fps: doc.video.fps || 30, frames: doc.video.frames, analysis, track: analysis ? window.Pose.mainTrack(analysis) : null };
}

document.addEventListener("DOMContentLoaded", async () => {
  try { await Promise.all([setUp("a"), setUp("b")]); } catch (e) { window.UI.banner(`compare: ${e.message}`); return; }
  const names = (sides.a.analysis && sides.a.analysis.angle_names) || [];
  const picker = document.getElementById("compare-angle");
  const first = window.Pose.defaultAngles(names)[0];
  for (const n of names) picker.append(el("option", { value: n, selected: n === first }, n));
  picker.addEventListener("change", align);
  document.getElementById("align-by").addEventListener("change", align);
  const scrubber = document.getElementById("compare-scrubber");
  scrubber.max = String(Math.max(sides.a.frames - 1, 0));
  scrubber.addEventListener("input", () => sides.a.viewer.seekFrame(Number(scrubber.value)));
  document.getElementById("play-both").addEventListener("click", () => {
    const v = sides.a.viewer.video;
    if (v.paused) v.play(); else v.pause();
  });
  align();
  box.dataset.ready = "true";
});
