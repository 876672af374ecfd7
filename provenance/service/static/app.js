// The photo desk page: one POST /v1/check per image, one card per record. No outside assets.
"use strict";

const LABEL_WORDS = {
  synthetic: "Synthetic",
  likely_synthetic: "Likely synthetic",
  inconclusive: "Inconclusive",
  no_evidence_of_synthesis: "No evidence of synthesis",
  capture_declared: "Capture declared",
  error: "Could not be checked",
  failed: "Not checked",
  pending: "Checking\u2026",
};
const MAX_RETRIES = 3;

const $ = (selector, root = document) => root.querySelector(selector);
const form = $("#upload");
const input = $("#files");
const drop = $("#drop");
const results = $("#results");
const statusLine = $("#status");
const tokenBox = $("#token-box");
const tokenInput = $("#token");
const objectUrls = [];

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function authHeaders() {
  const token = tokenInput.value.trim() || sessionStorage.getItem("provenance-token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

function needToken(message) {
  tokenBox.hidden = false;
  statusLine.textContent = message;
  tokenInput.focus();
}

async function describeService() {
  try {
    const response = await fetch("/v1/detectors", { headers: authHeaders() });
    if (response.status === 401) { needToken("This server needs an API token: enter it, then check."); return; }
    if (!response.ok) { $("#service").textContent = "Models are still loading\u2026"; setTimeout(describeService, 3000); return; }
    const info = await response.json();
    const mib = (info.limits.max_upload_bytes / 2 ** 20).toFixed(0);
    $("#service").textContent = "Detectors: " + info.detectors.map((d) => d.name).join(", ") +
      ". Limits: " + mib + " MiB and " + info.limits.max_files + " files per request, " +
      (info.limits.max_pixels / 1e6).toFixed(0) + " MP per image.";
  } catch (error) {
    $("#service").textContent = "The server cannot be reached.";
  }
}

function fmtNumber(value) {
  if (value === null || value === undefined) return "";
  if (value === 0) return "0";
  return Math.abs(value) < 1e-3 ? value.toExponential(1) : value.toFixed(3);
}

function measure(evidence) {
  const parts = [];
  if (evidence.p_value !== null && evidence.p_value !== undefined) parts.push("p = " + fmtNumber(evidence.p_value));
  if (evidence.probability !== null && evidence.probability !== undefined) parts.push("P(synthetic) = " + fmtNumber(evidence.probability));
  if (evidence.state) parts.push("C2PA " + evidence.state);
  return parts.join("; ") || "\u2013";
}

function newCard(fileName, batch) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  $(".file", card).textContent = fileName;
  setLabel(card, "pending", "");
  batch.append(card);
  return card;
}

function setLabel(card, label, meaning) {
  card.dataset.label = label;
  $(".badge", card).textContent = LABEL_WORDS[label] || label;
  $(".meaning", card).textContent = meaning;
}

function showPreview(card, file) {
  if (!file.type.startsWith("image/")) return;
  const url = URL.createObjectURL(file);
  objectUrls.push(url);
  const img = $(".preview img", card);
  img.alt = "Preview of " + file.name;
  img.src = url;
  $(".preview", card).hidden = false;
}

function render(card, record) {
  setLabel(card, record.label, record.meaning);
  const reasons = $(".reasons", card);
  reasons.replaceChildren(...(record.reasons.length ? record.reasons : [record.error || "no reason given"]).map((r) => el("li", r)));

  const body = $(".evidence tbody", card);
  body.replaceChildren(...record.evidence.map((e) => {
    const row = el("tr", null, "sig-" + e.signal);
    row.append(el("th", e.detector), el("td", e.signal.replace(/_/g, " ")), el("td", e.strength.replace(/_/g, " ")),
      el("td", measure(e), "num"), el("td", e.error ? e.summary + " (" + e.error + ")" : e.summary));
    row.firstChild.setAttribute("scope", "row");
    return row;
  }));
  if (!record.evidence.length) $(".evidence-box", card).hidden = true;

  renderWatermark(card, record.evidence.find((e) => e.family === "watermark" && e.signal === "synthetic" && e.details && e.details.id));
  renderC2pa(card, record.evidence.find((e) => e.detector === "c2pa" && e.details && e.details.manifest));
  renderHeatmap(card, record.heatmap);

  const json = JSON.stringify(record, null, 2);
  const url = URL.createObjectURL(new Blob([json], { type: "application/json" }));
  objectUrls.push(url);
  const link = $(".download", card);
  link.href = url;
  link.download = record.source.replace(/\.[^.]*$/, "") + ".provenance.json";
  link.setAttribute("aria-label", "Download the JSON record of " + record.source);
  const image = record.image;
  $(".meta", card).textContent = (image ? image.format + " " + image.width + "\u00d7" + image.height + ", " : "") +
    "checked in " + record.seconds.toFixed(2) + " s";
}

function renderWatermark(card, evidence) {
  if (!evidence) return;
  $(".watermark", card).hidden = false;
  const d = evidence.details;
  const weighted = d.statistic && d.statistic !== "matches" ? ", confidence-weighted" : "";
  $(".watermark-id", card).textContent = d.id + " (" + d.scheme + ", " + d.matches + "/" + d.bits + " sync bits" + weighted + ")";
}

function renderC2pa(card, evidence) {
  if (!evidence) return;
  const d = evidence.details;
  const list = $(".c2pa-list", card);
  const add = (term, value) => {
    if (value === null || value === undefined || value === "") return;
    const dd = el("dd");
    if (value instanceof Node) dd.append(value); else dd.textContent = String(value);
    list.append(el("dt", term), dd);
  };
  const signer = d.signer || {};
  add("Signer", [signer.common_name, signer.issuer && "issued by " + signer.issuer].filter(Boolean).join(", ") || "unnamed");
  let trust;
  if (d.validation_state === "Invalid") trust = el("span", "fails validation: the credentials were broken after signing", "invalid");
  else if (d.trusted) trust = el("span", "trusted (signer on the trust list)", "trusted");
  else trust = el("span", "valid, but the signer is not on the trust list", "untrusted");
  add("Trust", trust);
  add("Claim generator", d.claim_generator);
  if (d.actions && d.actions.length) {
    const actions = el("ul", null, "plain");
    d.actions.forEach((a) => actions.append(el("li", [a.action, a.digitalSourceType, a.softwareAgent && "by " + a.softwareAgent].filter(Boolean).join(" \u2013 "))));
    add("Actions", actions);
  }
  add("Digital source type", d.digital_source_type || "not declared");
  if (d.signed_at) add("Signed at", d.signed_at);
  const failures = (d.failures || []).concat(d.ingredient_failures || []).map((f) => f.code).filter((c) => c !== "signingCredential.untrusted");
  if (failures.length) add("Failures", failures.join(", "));
  const items = (d.ingredients && d.ingredients.items) || [];
  if (items.length) {
    const tree = el("ul", null, "tree");
    const root = el("li", "this image");
    if (d.active_manifest) root.title = d.active_manifest;
    root.append(ingredientTree(items));
    tree.append(root);
    add("Ingredients", tree);
  }
  $(".c2pa", card).hidden = false;
}

function ingredientTree(items) {
  const list = el("ul");
  for (const item of items) {
    const parts = [item.title || "untitled", item.relationship, item.has_manifest ? "has its own manifest" : "no manifest"];
    if (item.recorded_failures && item.recorded_failures.length) parts.push("recorded failures: " + item.recorded_failures.join(", "));
    const node = el("li", parts.filter(Boolean).join(" \u2013 "));
    const children = item.ingredients && (item.ingredients.items || item.ingredients);
    if (Array.isArray(children) && children.length) node.append(ingredientTree(children));
    list.append(node);
  }
  return list;
}

function renderHeatmap(card, heatmap) {
  const caption = $(".preview figcaption", card);
  if (!heatmap) return;
  if (!heatmap.tiles || !heatmap.tiles.length) { caption.textContent = heatmap.note || ""; return; }
  const canvas = $(".overlay", card);
  canvas.width = heatmap.width;
  canvas.height = heatmap.height;
  const ctx = canvas.getContext("2d");
  const line = Math.max(2, Math.round(heatmap.width / 200));
  let above = 0;
  for (const t of heatmap.tiles) {
    const red = Math.round(40 + 215 * t.p), blue = Math.round(255 - 215 * t.p);
    ctx.fillStyle = "rgba(" + red + ",40," + blue + ",0.42)";
    ctx.fillRect(t.x, t.y, heatmap.tile, heatmap.tile);
    if (heatmap.threshold !== null && t.p >= heatmap.threshold) {
      above += 1;
      ctx.strokeStyle = "rgb(255,230,0)";
      ctx.lineWidth = line;
      ctx.strokeRect(t.x + line / 2, t.y + line / 2, heatmap.tile - line, heatmap.tile - line);
    }
  }
  caption.textContent = "Heatmap of the " + heatmap.detector + " classifier over " + heatmap.tiles.length + " tiles of " +
    heatmap.tile + " px: red where a tile alone scores as synthetic, blue where it does not; " + above +
    " outlined at or above its threshold (" + fmtNumber(heatmap.threshold) + "). A statistical guess, not proof.";
  const toggle = $(".toggle-heatmap", card);
  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    const shown = toggle.getAttribute("aria-pressed") !== "true";
    toggle.setAttribute("aria-pressed", String(shown));
    toggle.textContent = shown ? "Hide heatmap" : "Show heatmap";
    canvas.hidden = !shown;
  });
}

function failCard(card, message) {
  setLabel(card, "failed", message);
  $(".reasons", card).replaceChildren(el("li", message));
  $(".evidence-box", card).hidden = true;
}

async function checkFile(file, card) {
  const body = new FormData();
  body.append("files", file, file.name);
  const query = $("#heatmap").checked ? "?heatmap=1" : "";
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch("/v1/check" + query, { method: "POST", body, headers: authHeaders() });
    } catch (error) {
      failCard(card, "the server could not be reached");
      return;
    }
    if (response.ok) {
      const payload = await response.json();
      render(card, payload.records[0]);
      return;
    }
    const problem = await response.json().catch(() => ({}));
    if (response.status === 503 && attempt < MAX_RETRIES) {
      const wait = Number(response.headers.get("Retry-After") || "2");
      setLabel(card, "pending", "server busy; retrying in " + wait + " s");
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    if (response.status === 401) needToken("The API token is missing or wrong.");
    failCard(card, "HTTP " + response.status + ": " + (problem.detail || response.statusText));
    return;
  }
}

async function checkFiles(files) {
  if (!files.length) { statusLine.textContent = "Choose one or more images first."; input.focus(); return; }
  if (tokenInput.value.trim()) sessionStorage.setItem("provenance-token", tokenInput.value.trim());
  const batch = el("div", null, "batch");  // the newest batch on top, its images in the order chosen
  results.prepend(batch);
  const jobs = files.map((file) => { const card = newCard(file.name, batch); showPreview(card, file); return [file, card]; });
  let done = 0;
  statusLine.textContent = "Checking " + files.length + " image" + (files.length > 1 ? "s" : "") + "\u2026";
  for (const [file, card] of jobs) {
    await checkFile(file, card);
    done += 1;
    statusLine.textContent = "Checked " + done + " of " + files.length + ".";
  }
  statusLine.textContent = "Done: " + jobs.map(([file, card]) => file.name + ": " + $(".badge", card).textContent).join("; ") + ".";
}

form.addEventListener("submit", (event) => { event.preventDefault(); checkFiles(Array.from(input.files)); });
input.addEventListener("change", () => { if (input.files.length) checkFiles(Array.from(input.files)); });
$("#clear").addEventListener("click", () => {
  results.replaceChildren();
  objectUrls.splice(0).forEach((url) => URL.revokeObjectURL(url));
  input.value = "";
  statusLine.textContent = "Results cleared.";
});
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (event) => { event.preventDefault(); checkFiles(Array.from(event.dataTransfer.files)); });
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => event.preventDefault());
describeService();
