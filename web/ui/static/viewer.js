// The pose viewer: frames of a result fetched in windows around the playhead (?frames=A:B, NDJSON),
// so an hour-long result is never loaded whole, and skeletons drawn on a canvas over the video in
// step with playback (checked every animation frame, and on seeks).
"use strict";
const WINDOW_FRAMES = 240;      // frames per fetched window
const KEEP_WINDOWS = 12;        // windows kept (least recently used dropped)
const FADED_BELOW = 0.5;        // joints whose visibility is below this are drawn faded

class PoseSource {
  constructor(jobId) { this.jobId = jobId; this.windows = new Map(); this.loading = new Map(); this.tracks = new Set(); }

  // the result document without its frames (video, skeleton, keypoint names, tracks)
  async head() {
    if (!this._head) this._head = window.UI.api(`/v1/jobs/${this.jobId}/result?frames=0:0`);
    const doc = await this._head;
    for (const t of doc.tracks || []) this.tracks.add(t.track_id);
    return doc;
  }

  // the frame if its window is here; otherwise null, and the window is fetched (then onLoad runs)
  frame(index, onLoad) {
    const k = Math.floor(index / WINDOW_FRAMES);
    const w = this.windows.get(k);
    if (w) { this.windows.delete(k); this.windows.set(k, w); return w.get(index) || { index, people: [] }; }
    this.load(k).then(() => onLoad && onLoad(), (e) => console.error(e));
    return null;
  }

  // prefetch the window after the playhead's, so playing on never waits
  prefetch(index) {
    const k = Math.floor(index / WINDOW_FRAMES);
    if (index % WINDOW_FRAMES > WINDOW_FRAMES / 2 && !this.windows.has(k + 1)) this.load(k + 1).catch(() => {});
  }

  load(k) {
    if (this.loading.has(k)) return this.loading.get(k);
    const a = k * WINDOW_FRAMES, b = a + WINDOW_FRAMES;
    const p = fetch(`/v1/jobs/${this.jobId}/result?frames=${a}:${b}&format=ndjson`, { headers: window.UI.headers() })
      .then((r) => { if (!r.ok) throw new Error(`frames ${a}:${b}: HTTP ${r.status}`); return r.text(); })
      .then((text) => {
        const frames = new Map();
        for (const line of text.split("\n")) {
          if (!line) continue;
          const f = JSON.parse(line);
          frames.set(f.index, f);
          for (const p of f.people) if (p.track_id !== null) this.tracks.add(p.track_id);
        }
        this.windows.set(k, frames);
        while (this.windows.size > KEEP_WINDOWS) this.windows.delete(this.windows.keys().next().value);
      })
      .finally(() => this.loading.delete(k));
    this.loading.set(k, p);
    return p;
  }
}

class PoseViewer {
  // video, canvas: elements; source: PoseSource; onFrame(index) after each drawn frame
  constructor(video, canvas, source, onFrame) {
    Object.assign(this, { video, canvas, source, onFrame, track: null, lastIndex: -1, doc: null });
  }

  async start() {
    this.doc = await this.source.head();
    this.fps = this.doc.video.fps || 30;
    this.frames = this.doc.video.frames || 0;
    const loop = () => { this.draw(); this.schedule(loop); };
    for (const ev of ["seeked", "ended", "pause"]) this.video.addEventListener(ev, () => this.draw(true));
    this.video.addEventListener("loadeddata", () => this.draw(true));
    this.schedule(loop);
    return this.doc;
  }

  // every animation frame (cheap while the frame index stays the same). Not requestVideoFrameCallback
  // alone: it never fires again once playback ends, which would freeze the overlay on a stale frame.
  schedule(fn) { requestAnimationFrame(fn); }

  index() {
    if (this.video.ended) return Math.max(this.frames - 1, 0);  // currentTime may stop short of the last frame's end
    const i = Math.floor(this.video.currentTime * this.fps + 1e-3);
    return Math.max(0, Math.min(i, Math.max(this.frames - 1, 0)));
  }

  seekFrame(i) { this.video.currentTime = (i + 0.5) / this.fps; }

  draw(force) {
    const index = this.index();
    if (!force && index === this.lastIndex && this.drawn) return;
    const frame = this.source.frame(index, () => this.draw(true));
    this.source.prefetch(index);
    this.lastIndex = index;
    this.drawn = frame !== null;
    const c = this.canvas, ctx = c.getContext("2d");
    const box = this.video.getBoundingClientRect();
    const w = Math.max(1, Math.round(box.width)), h = Math.max(1, Math.round(box.height));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    ctx.clearRect(0, 0, w, h);
    if (frame) this.drawPeople(ctx, frame, w, h);
    if (this.onFrame) this.onFrame(index);
  }

  drawPeople(ctx, frame, w, h) {
    const sx = w / this.doc.video.width, sy = h / this.doc.video.height;
    const edges = this.doc.skeleton || [];
    for (const person of frame.people) {
      if (person.track_id === null || (this.track !== null && person.track_id !== this.track)) continue;
      const colour = window.UI.trackColour(person.track_id);
      const k = person.keypoints;
      ctx.lineWidth = 3; ctx.strokeStyle = colour; ctx.fillStyle = colour;
      for (const [i, j] of edges) {
        const a = k[i], b = k[j];
        if (!a || !b) continue;
        ctx.globalAlpha = Math.min(a[3], b[3]) < FADED_BELOW ? 0.25 : 1;
        ctx.beginPath(); ctx.moveTo(a[0] * sx, a[1] * sy); ctx.lineTo(b[0] * sx, b[1] * sy); ctx.stroke();
      }
      for (const p of k) {
        ctx.globalAlpha = p[3] < FADED_BELOW ? 0.25 : 1;
        ctx.beginPath(); ctx.arc(p[0] * sx, p[1] * sy, 3.5, 0, 2 * Math.PI); ctx.fill();
      }
      ctx.globalAlpha = 1;
      const [x0, y0] = person.bbox;
      ctx.font = "bold 13px sans-serif";
      ctx.fillText(`#${person.track_id}`, x0 * sx + 2, Math.max(12, y0 * sy - 4));
    }
  }
}

// analysis@1 around the playhead: the whole document when short, else windows of frames (?frames=A:B)
const ANALYSIS_SPAN = 6000;
class AnalysisSource {
  constructor(jobId, totalFrames) { this.jobId = jobId; this.total = totalFrames; this.doc = null; this.range = null; }

  // the document covering frame i: {doc, range:[a,b)} or throws ApiError (404 analysis_not_found, 409 pending)
  async around(i) {
    if (this.doc && (this.range === null || (i >= this.range[0] && i < this.range[1]))) return this.doc;
    if (this.pending) return this.pending;  // one request at a time, however often the playhead asks
    this.pending = this.fetch(i).finally(() => { this.pending = null; });
    return this.pending;
  }

  async fetch(i) {
    let q = "", range = null;
    if (this.total > ANALYSIS_SPAN) {
      const a = Math.max(0, Math.min(i - ANALYSIS_SPAN / 2, this.total - ANALYSIS_SPAN));
      range = [a, a + ANALYSIS_SPAN];
      q = `?frames=${a}:${a + ANALYSIS_SPAN}`;
    }
    const doc = await window.UI.api(`/v1/jobs/${this.jobId}/analysis${q}`);
    this.doc = doc; this.range = range;  // together, once the window is here
    return doc;
  }
}

// the series value of a track at frame f (null where the track has no value)
function seriesAt(track, values, f) {
  if (!track._pos) { track._pos = new Map(); track.frames.forEach((x, i) => track._pos.set(x, i)); }
  const i = track._pos.get(f);
  return i === undefined ? null : values[i];
}

// the track with the most frames: the default subject of plots and comparisons
function mainTrack(doc, wanted) {
  const tracks = doc.tracks || [];
  if (wanted !== null && wanted !== undefined) { const t = tracks.find((x) => x.track_id === wanted); if (t) return t; }
  return tracks.slice().sort((a, b) => b.frames.length - a.frames.length)[0] || null;
}

// angles to show first: knees and hips when the analysis has them
function defaultAngles(names) {
  const pref = names.filter((n) => /knee|hip/.test(n) && !n.endsWith("_2d"));  // 3D first
  return (pref.length ? pref : names).slice(0, 4);
}

window.Pose = { PoseSource, PoseViewer, AnalysisSource, seriesAt, mainTrack, defaultAngles };
