// ccvae studio: the page. Every string from the model (label and class names) goes in as text.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,          // GET /api/model
  image: null,          // the current image's state (GET /api/images/{id})
  moves: {},            // label name -> slider value t in [0, 1]; a label not here keeps its own
  fromB: {},            // label name -> true when taken from the second image
  second: null,         // the second image's id
  rows: {},             // label name -> its row's elements
  inflight: false,      // a render request on its way
  pending: false,       // input arrived while it was: send once more when it returns
  firstInput: null,     // time of the first input not yet in a request
  timings: [],          // ms from a slider input to the new image on screen (benchmarks read it)
};
window.studio = state;

function show(message) { $("message").textContent = message || ""; }

async function call(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return response;
}

const postJSON = (path, body) => call(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify(body)});

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v; else if (k in node) node[k] = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// -- set-up ---------------------------------------------------------------------------------------

async function start() {
  state.model = await (await call("/api/model")).json();
  $("model-name").textContent = `${state.model.model} · ${state.model.size} px · ${state.model.labels.length} labels`;
  for (const ex of state.model.examples) {
    const button = el("button", {type: "button", title: ex.name, className: "example"},
                      [el("img", {src: ex.thumbnail, alt: ex.name})]);
    button.addEventListener("click", () => pick(ex.id));
    $("examples").append(button);
    $("swap-image").append(el("option", {value: ex.id, text: ex.name}));
  }
  $("swap-image").prepend(el("option", {value: "", text: "(none)"}));
  $("swap-image").value = "";
  buildLabels();
  wire();
  if (state.model.examples.length) await pick(state.model.examples[0].id);
  document.body.dataset.ready = "1";
}

function buildLabels() {
  const labels = state.model.labels;
  labels.forEach((lab, i) => {
    const slider = el("input", {type: "range", min: "0", max: "1", step: "0.005", value: "0.5",
                                "aria-label": `${lab.name}: class ${lab.classes[0]} to ${lab.classes.at(-1)}`});
    const track = el("div", {className: "track"}, [slider]);
    const own = el("span", {className: "own", text: "▲", title: "the image's own value"});
    track.append(own);
    for (const t of lab.marks) {
      const tick = el("span", {className: "tick"});
      tick.style.left = onTrack(t);
      track.append(tick);
    }
    const q = el("span", {className: "q"}), bar = el("span", {className: "bar"}), fill = el("span");
    bar.append(fill);
    const reset = el("button", {type: "button", text: "reset", "aria-label": `reset ${lab.name}`});
    const fromB = el("input", {type: "checkbox", "aria-label": `${lab.name} from the second image`});
    const row = el("div", {className: "label-row", "data-label": lab.name}, [
      el("span", {className: "name", text: lab.name}),
      el("span", {className: "end", text: lab.classes[0]}), track,
      el("span", {className: "end", text: lab.classes.at(-1)}),
      bar, q, reset, el("label", {className: "fromb"}, [fromB, " from B"])]);
    $("labels").append(row);
    state.rows[lab.name] = {slider, own, q, fill, fromB, row};
    slider.addEventListener("input", () => { state.moves[lab.name] = +slider.value; delete state.fromB[lab.name];
                                             fromB.checked = false; edited(); });
    slider.addEventListener("focus", () => { $("gif-label").value = lab.name; });
    reset.addEventListener("click", () => resetLabel(lab.name));
    fromB.addEventListener("change", () => setFromB(lab.name, fromB.checked));
    for (const select of [$("gif-label"), $("pad-x"), $("pad-y")]) select.append(el("option", {value: lab.name, text: lab.name}));
    const choose = el("select", {"aria-label": `${lab.name} for the samples`});
    choose.append(el("option", {value: "", text: "any"}));
    lab.classes.forEach((c, k) => choose.append(el("option", {value: String(k), text: c})));
    $("sample-labels").append(el("label", {}, [`${lab.name} `, choose]));
    state.rows[lab.name].sample = choose;
  });
  if (labels.length > 1) $("pad-y").value = labels[1].name;
}

function wire() {
  $("file").addEventListener("change", () => upload($("file").files[0], pick));
  $("swap-file").addEventListener("change", () => upload($("swap-file").files[0], (id, s) => chooseSecond(id, s)));
  $("swap-image").addEventListener("change", () => chooseSecond($("swap-image").value || null));
  $("reset-all").addEventListener("click", () => { for (const name in state.rows) resetLabel(name, false); edited(); });
  $("swap-all").addEventListener("click", () => { for (const name in state.rows) setFromB(name, true, false); edited(); });
  $("swap-none").addEventListener("click", () => { for (const name in state.rows) setFromB(name, false, false); edited(); });
  $("download-png").addEventListener("click", downloadPNG);
  $("download-gif").addEventListener("click", downloadGIF);
  $("sample").addEventListener("click", sample);
  $("card-button").addEventListener("click", showCard);
  const views = $("views");
  views.addEventListener("dragover", (e) => { e.preventDefault(); views.classList.add("drop"); });
  views.addEventListener("dragleave", () => views.classList.remove("drop"));
  views.addEventListener("drop", (e) => { e.preventDefault(); views.classList.remove("drop");
                                          if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0], pick); });
  wirePad();
}

// -- images ---------------------------------------------------------------------------------------

async function upload(file, then) {
  if (!file) return;
  show("");
  try {
    const response = await call("/api/images", {method: "POST", body: file,
      headers: {"Content-Type": "application/octet-stream", "X-File-Name": encodeURIComponent(file.name).slice(0, 200)}});
    const s = await response.json();
    await then(s.id, s);
  } catch (e) { show(e.message); }
}

async function pick(id, known) {
  show("");
  try {
    const s = known || await (await call(`/api/images/${id}`)).json();
    state.image = s; state.moves = {};
    $("input").src = s.input; $("reconstruction").src = s.reconstruction;
    state.model.labels.forEach((lab, i) => {
      const row = state.rows[lab.name];
      row.own.style.left = onTrack(s.positions[i]);
    });
    syncSliders();
    showQ(s.q_reconstruction);
    edited();
  } catch (e) { show(e.message); }
}

async function chooseSecond(id, known) {
  state.second = id;
  if (!id) { $("swap-thumb").removeAttribute("src"); for (const n in state.rows) setFromB(n, false, false); edited(); return; }
  try {
    const s = known || await (await call(`/api/images/${id}`)).json();
    $("swap-thumb").src = s.input;
    state.secondPositions = s.positions;
    edited();
  } catch (e) { show(e.message); }
}

// -- sliders --------------------------------------------------------------------------------------

// where value t sits over a range input: its thumb's centre travels from half a thumb in to half a thumb short
function onTrack(t) { return `calc(var(--thumb) + ${t} * (100% - 2 * var(--thumb)))`; }

function syncSliders() {
  state.model.labels.forEach((lab, i) => {
    const row = state.rows[lab.name];
    let t = state.moves[lab.name];
    if (t === undefined && state.fromB[lab.name] && state.secondPositions) t = state.secondPositions[i];
    if (t === undefined && state.image) t = state.image.positions[i];
    row.slider.value = String(t ?? 0.5);
    row.row.classList.toggle("moved", lab.name in state.moves || !!state.fromB[lab.name]);
  });
  drawPad();
}

function resetLabel(name, render = true) {
  delete state.moves[name]; delete state.fromB[name]; state.rows[name].fromB.checked = false;
  if (render) edited();
}

function setFromB(name, on, render = true) {
  if (on && !state.second) { show("choose a second image first (Swap)"); state.rows[name].fromB.checked = false; return; }
  state.rows[name].fromB.checked = on;
  if (on) { state.fromB[name] = true; delete state.moves[name]; } else delete state.fromB[name];
  if (render) edited();
}

function showQ(q) {
  state.model.labels.forEach((lab, i) => {
    const row = state.rows[lab.name], p = q[i];
    let k = p.length === 2 ? 1 : p.indexOf(Math.max(...p));
    row.q.textContent = p.length === 2 ? `q=${p[1].toFixed(2)}` : `${lab.classes[k]} ${p[k].toFixed(2)}`;
    row.fill.style.width = `${100 * p[k]}%`;
    row.row.dataset.q = String(p.length === 2 ? p[1] : p[k]);
  });
}

function request() {
  const body = {image: state.image.id, moves: {...state.moves}};
  const labels = Object.keys(state.fromB);
  if (state.second && labels.length) body.swap = {image: state.second, labels};
  return body;
}

// A slider moved: ask for the new image, one request at a time; input that arrives meanwhile is
// folded into one more request when the current one returns (requests coalesced while dragging).
function edited() {
  if (!state.image) return;
  syncSliders();
  if (state.firstInput === null) state.firstInput = performance.now();
  if (state.inflight) { state.pending = true; return; }
  send();
}

async function send() {
  state.inflight = true; state.pending = false;
  const since = state.firstInput; state.firstInput = null;
  try {
    const result = await (await postJSON("/api/render", request())).json();
    await shown($("edited"), result.image);
    state.timings.push(performance.now() - since);
    $("edited").dataset.version = String(+$("edited").dataset.version + 1);
    showQ(result.q);
  } catch (e) { show(e.message); }
  state.inflight = false;
  if (state.pending) send();
}

function shown(img, src) {
  return new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = src; });
}

// -- the 2-D pad ----------------------------------------------------------------------------------

function padLabels() { return [$("pad-x").value, $("pad-y").value]; }

function padValue(name) { return +state.rows[name].slider.value; }

function drawPad() {
  const canvas = $("pad"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#ccc";
  for (let k = 1; k < 4; k++) { ctx.beginPath(); ctx.moveTo(k * w / 4, 0); ctx.lineTo(k * w / 4, h);
                                ctx.moveTo(0, k * h / 4); ctx.lineTo(w, k * h / 4); ctx.stroke(); }
  const [x, y] = padLabels();
  if (!x || !y || !state.rows[x]) return;
  ctx.fillStyle = "#1565c0"; ctx.beginPath();
  ctx.arc(padValue(x) * w, (1 - padValue(y)) * h, 7, 0, 2 * Math.PI); ctx.fill();
}

function padSet(tx, ty) {
  const [x, y] = padLabels();
  if (x === y) { show("pick two different labels for the pad"); return; }
  const clamp = (v) => Math.min(1, Math.max(0, v));
  for (const [name, t] of [[x, clamp(tx)], [y, clamp(ty)]]) {
    state.moves[name] = t; delete state.fromB[name]; state.rows[name].fromB.checked = false;
  }
  edited();
}

function wirePad() {
  const canvas = $("pad");
  const at = (e) => { const r = canvas.getBoundingClientRect();
                      padSet((e.clientX - r.left) / r.width, 1 - (e.clientY - r.top) / r.height); };
  canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); at(e); });
  canvas.addEventListener("pointermove", (e) => { if (canvas.hasPointerCapture(e.pointerId)) at(e); });
  canvas.addEventListener("keydown", (e) => {
    const step = {ArrowLeft: [-0.02, 0], ArrowRight: [0.02, 0], ArrowUp: [0, 0.02], ArrowDown: [0, -0.02]}[e.key];
    if (!step) return;
    e.preventDefault();
    const [x, y] = padLabels();
    padSet(padValue(x) + step[0], padValue(y) + step[1]);
  });
  $("pad-x").addEventListener("change", drawPad);
  $("pad-y").addEventListener("change", drawPad);
}

// -- downloads, samples, the card -----------------------------------------------------------------

function fileName(text) { return text.toLowerCase().replace(/[^a-z0-9_-]+/g, "_").slice(0, 60) || "image"; }

async function save(response, name) {
  const url = URL.createObjectURL(await response.blob());
  const a = el("a", {href: url, download: name});
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function downloadPNG() {
  if (!state.image) return;
  try { await save(await postJSON("/api/download", request()), `${fileName(state.image.name)}.edit.png`); }
  catch (e) { show(e.message); }
}

async function downloadGIF() {
  if (!state.image) return;
  const label = $("gif-label").value;
  $("download-gif").disabled = true;
  try { await save(await postJSON("/api/gif", {...request(), label}), `${fileName(state.image.name)}.${fileName(label)}.gif`); }
  catch (e) { show(e.message); }
  $("download-gif").disabled = false;
}

async function sample() {
  const set = {};
  for (const [name, row] of Object.entries(state.rows)) if (row.sample.value !== "") set[name] = +row.sample.value;
  const body = {set, n: +$("sample-n").value, seed: +$("sample-seed").value};
  if ($("keep-style").checked && state.image) body.style = state.image.id;
  try { $("samples").src = (await (await postJSON("/api/sample", body)).json()).image; show(""); }
  catch (e) { show(e.message); }
}

async function showCard() {
  try { $("card-text").textContent = (await (await call("/api/card")).json()).text; $("card").showModal(); }
  catch (e) { show(e.message); }
}

start().catch((e) => show(e.message));
