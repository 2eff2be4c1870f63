// The submit page: drag and drop (or choose) a video, parameters, an upload progress bar (XHR upload
// progress: fetch() reports none), then the job's page.
"use strict";
let chosen = null;

function choose(file) {
  chosen = file || null;
  document.getElementById("file-name").textContent = chosen ? `${chosen.name} (${(chosen.size / 1048576).toFixed(1)} MiB)` : "";
  document.getElementById("send").disabled = !chosen;
}

function params(form) {
  const out = {};
  for (const field of form.querySelectorAll(".params [data-kind]")) {
    const v = field.value.trim();
    if (v === "") continue;
    out[field.name] = field.dataset.kind === "int" ? parseInt(v, 10) : field.dataset.kind === "float" ? parseFloat(v) : v;
  }
  return out;
}

function upload(form) {
  const data = new FormData();
  data.append("video", chosen, chosen.name);
  const p = params(form);
  if (Object.keys(p).length) data.append("params", JSON.stringify(p));
  const priority = form.querySelector("[name=priority]").value.trim();
  if (priority) data.append("priority", priority);
  const bar = document.getElementById("upload-progress"), text = document.getElementById("upload-text");
  bar.hidden = false;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/jobs");
  for (const [k, v] of Object.entries(window.UI.headers())) xhr.setRequestHeader(k, v);
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    bar.value = 100 * e.loaded / e.total;
    text.textContent = `${(e.loaded / 1048576).toFixed(1)} of ${(e.total / 1048576).toFixed(1)} MiB`;
  });
  xhr.upload.addEventListener("load", () => { text.textContent = "uploaded; the server checks the video…"; });
  xhr.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status === 200 || xhr.status === 201) { location.href = `/jobs/${body.id}`; return; }
    const msg = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${xhr.status}`;
    text.textContent = ""; bar.hidden = true;
    window.UI.banner(`submit failed: ${msg}`);
    document.getElementById("send").disabled = false;
  });
  xhr.addEventListener("error", () => { window.UI.banner("the upload failed (network)"); document.getElementById("send").disabled = false; });
  document.getElementById("send").disabled = true;
  xhr.send(data);
}

document.addEventListener("DOMContentLoaded", () => {
  const drop = document.getElementById("drop"), input = document.getElementById("file");
  input.addEventListener("change", () => choose(input.files[0]));
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); choose(e.dataTransfer.files[0]); });
  document.getElementById("submit-form").addEventListener("submit", (e) => { e.preventDefault(); if (chosen) upload(e.target); });
});
