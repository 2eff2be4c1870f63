// Shared by every page: the API token (sessionStorage), REST calls with it, small DOM helpers.
// The token stays in this tab's sessionStorage; it is also put in the pose_token cookie, restricted
// to /v1/jobs/ and SameSite=Strict, because a <video> element cannot send an Authorization header
// (only GET /v1/jobs/{id}/video reads that cookie, see web/routes_video.py).
"use strict";
const TOKEN_KEY = "pose_token";
const UI = window.UI = {};

UI.token = () => sessionStorage.getItem(TOKEN_KEY) || "";
UI.setToken = (value) => {
  if (value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    document.cookie = `${TOKEN_KEY}=${encodeURIComponent(value)}; path=/v1/jobs/; SameSite=Strict`;
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
    document.cookie = `${TOKEN_KEY}=; path=/v1/jobs/; SameSite=Strict; max-age=0`;
  }
};
UI.headers = (extra) => {
  const h = Object.assign({}, extra || {});
  const t = UI.token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}
UI.ApiError = ApiError;

// fetch a REST route with the token; JSON answers parsed, errors thrown as ApiError
UI.api = async (path, options) => {
  const opts = Object.assign({}, options || {});
  opts.headers = UI.headers(opts.headers);
  const r = await fetch(path, opts);
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const err = body && body.error ? body.error : { code: "http_" + r.status, message: String(body).slice(0, 200) };
    if (r.status === 401 || r.status === 403) UI.banner(`${err.message} (enter a token with the right scope above)`);
    throw new ApiError(r.status, err.code, err.message);
  }
  return body;
};

UI.banner = (text) => {
  const b = document.getElementById("banner");
  if (!b) return;
  b.textContent = text || "";
  b.hidden = !text;
};

UI.el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
};

UI.seconds = (s) => {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
};

UI.videoName = (job) => {
  if (job.kind === "analysis") return job.source_job_id ? `analysis of #${job.source_job_id}` : `analysis of upload ${job.video.upload_id}`;
  return job.video.source === "path" ? (job.video.path || "").split("/").pop() : `upload ${job.video.upload_id}`;
};

UI.progressBar = (percent) => {
  const p = UI.el("progress", { max: "100", value: String(percent || 0) });
  return UI.el("span", { class: "pbar" }, p, ` ${percent === null || percent === undefined ? "–" : percent.toFixed(0) + "%"}`);
};

// the same colour for a track id on every page
UI.trackColour = (id) => `hsl(${(Number(id) * 137.508) % 360}, 85%, 55%)`;

// call fn now and every ms until it returns false; an error shows in the banner, polling goes on
UI.poll = (fn, ms) => {
  const tick = async () => {
    let more = true;
    try { more = (await fn()) !== false; } catch (e) { if (!(e instanceof ApiError)) console.error(e); }
    if (more) setTimeout(tick, ms);
  };
  tick();
};

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("token");
  const form = document.getElementById("token-form");
  if (!input || !form) return;
  input.value = UI.token();
  if (UI.token()) UI.setToken(UI.token());  // the cookie follows the tab's token
  form.addEventListener("submit", (ev) => { ev.preventDefault(); UI.setToken(input.value.trim()); location.reload(); });
  document.getElementById("token-clear").addEventListener("click", () => { UI.setToken(""); location.reload(); });
  if (document.body.dataset.apiClosed === "true" && !UI.token()) UI.banner("This server needs an API token: enter it above.");
});
