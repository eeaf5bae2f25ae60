// The demo page: calls the server's JSON endpoints and draws their answers; no model code and no external assets.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { info: null, map: null, path: null, step: 0 };

async function api(name, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(`/api/${name}`, options);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function formValues(form, numeric) {
  const values = {};
  for (const element of form.elements) {
    if (!element.name || element.disabled || element.closest("[hidden]")) continue;
    values[element.name] = numeric.includes(element.name) ? Number(element.value) : element.value;
  }
  return values;
}

function setStatus(id, text, error = false) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.classList.toggle("error", error);
}

async function submit(form, statusId, work) {
  const button = $("button[type=submit]", form);
  button.disabled = true;
  setStatus(statusId, "working…");
  const started = performance.now();
  try {
    await work();
    setStatus(statusId, `done in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    setStatus(statusId, error.message, true);
  } finally {
    button.disabled = false;
  }
}

function fillList(list, sentences) {
  list.replaceChildren(...sentences.map((s) => Object.assign(document.createElement("li"), { textContent: s })));
}

// ---------------------------------------------------------------- tabs and model info

function showTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
  if (name === "map") loadMap();
}

async function init() {
  const info = state.info = await api("info");
  const latent = info.latent.category_sizes.length
    ? `${info.latent.type} latent, categories ${info.latent.category_sizes.join("×")}`
    : `${info.latent.type} latent of ${info.latent.code_size} dimensions`;
  $("#model-info").textContent = `${info.model_type} from ${info.folder}: ${latent}; sentences up to ${info.max_length} tokens`;
  const available = { interpolate: "interpolate", map: "map", sample: "sample", respond: "respond", traverse: "traverse" };
  for (const button of document.querySelectorAll("#tabs button")) {
    button.hidden = !info.operations.includes(available[button.dataset.tab]);
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  // every form's decoding controls: strategy, temperature (for sampling) and seed
  for (const slot of document.querySelectorAll("span.decoding")) {
    slot.innerHTML = '<label>Strategy <select name="strategy" class="strategy"></select></label> ' +
      '<label>Temperature <input name="temperature" type="number" min="0.05" step="0.05"></label> ' +
      (slot.dataset.seed === "no" ? "" : '<label>Seed <input name="seed" type="number" min="0" value="0"></label>');
  }
  for (const select of document.querySelectorAll("select.strategy")) {
    select.replaceChildren(...info.strategies.map((s) => new Option(s, s, false, s === info.decoding.strategy)));
    const temperature = $("input[name=temperature]", select.form);
    const sync = () => { temperature.disabled = select.value !== "sample"; };
    select.addEventListener("change", sync);
    sync();
  }
  for (const input of document.querySelectorAll("input[name=temperature]")) input.value = info.decoding.temperature;
  for (const input of document.querySelectorAll("input[name=n]")) input.max = info.limits.max_samples;
  $("input[name=steps]").max = info.limits.max_steps;
  for (const input of document.querySelectorAll("input:not([type]), textarea")) input.maxLength = info.limits.max_chars;
  info.latent.category_sizes.forEach((size, i) => {
    $("#variable-select").append(new Option(`c${i} (${size} categories)`, i));
  });
  if (info.dialogue && info.dialogue.condition === "label") {
    $("#context-label").hidden = true;
    $("#label-label").hidden = false;
    $("input[name=label]").max = info.dialogue.num_labels - 1;
  }
  const first = [...document.querySelectorAll("#tabs button")].find((b) => !b.hidden);
  showTab(first.dataset.tab);
}

// ---------------------------------------------------------------- interpolate

function showStep(step) {
  state.step = step;
  const rows = document.querySelectorAll("#path-table tbody tr");
  rows.forEach((row, i) => row.classList.toggle("current", i === step));
  $("#step-sentence").textContent = state.path.path[step];
  drawPath();
}

function showPath(data) {
  state.path = data;
  const body = $("#path-table tbody");
  body.replaceChildren(...data.path.map((sentence, i) => {
    const row = document.createElement("tr");
    row.className = i === 0 ? "" : data.changed[i] ? "changed" : "same";
    const mark = i === 0 ? "start" : data.changed[i] ? "changed" : "same";
    for (const text of [String(i), data.t[i].toFixed(2), sentence, i === data.path.length - 1 ? "end" : mark]) {
      row.append(Object.assign(document.createElement("td"), { textContent: text }));
    }
    row.lastChild.className = "mark";
    row.addEventListener("click", () => { $("#step-slider").value = i; showStep(i); });
    return row;
  }));
  const m = data.metrics;
  const metrics = [["steps", m.steps], ["distinct sentences", m.num_distinct], ["changes between neighbours", m.changes],
    ["mean token edit distance", m.mean_edit_distance.toFixed(2)]];
  if (m.grammatical_fraction !== undefined) metrics.push(["grammatical (embedded corpus)", `${Math.round(100 * m.grammatical_fraction)}%`]);
  for (const note of data.warnings || []) metrics.push(["warning", note]);
  $("#path-metrics").replaceChildren(...metrics.flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: v }),
  ]));
  const slider = $("#step-slider");
  slider.max = data.path.length - 1;
  slider.value = 0;
  $("#path-result").hidden = false;
  showStep(0);
}

$("#step-slider").addEventListener("input", (event) => showStep(Number(event.target.value)));
$("#interpolate-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  submit(form, "interpolate-status", async () => {
    showPath(await api("interpolate", formValues(form, ["steps", "temperature", "seed"])));
  });
});

// ---------------------------------------------------------------- map

const SVG = "http://www.w3.org/2000/svg";
const svgNode = (tag, attributes) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  return node;
};

function scaler(points) {
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = 30, w = 640 - 2 * pad, h = 480 - 2 * pad;
  const sx = w / Math.max(x1 - x0, 1e-9), sy = h / Math.max(y1 - y0, 1e-9);
  return ([x, y]) => [pad + (x - x0) * sx, 480 - pad - (y - y0) * sy];
}

async function loadMap() {
  if (state.map) return drawPath();
  try {
    state.map = await api("map");
  } catch (error) {
    $("#map-note").textContent = error.message;
    return;
  }
  const map = state.map;
  // the path's points share the map's scale, so points outside the corpus cloud stay in view
  state.scale = scaler(map.points.concat(state.path && state.path.xy ? state.path.xy : []));
  const svg = $("#map");
  svg.replaceChildren();
  const tooltip = $("#map-tooltip");
  map.points.forEach((p, i) => {
    const [x, y] = state.scale(p);
    const dot = svgNode("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, class: "point" });
    dot.append(Object.assign(svgNode("title", {}), { textContent: map.sentences[i] }));
    dot.addEventListener("mouseenter", () => {
      tooltip.textContent = map.sentences[i];
      tooltip.hidden = false;
      const box = svg.getBoundingClientRect();
      tooltip.style.left = `${(x / 640) * box.width + 8}px`;
      tooltip.style.top = `${(y / 480) * box.height - 28}px`;
    });
    dot.addEventListener("mouseleave", () => { tooltip.hidden = true; });
    svg.append(dot);
  });
  svg.append(svgNode("g", { id: "path-layer" }));
  $("#map-note").textContent = `${map.sentences.length} sentences of the ${map.source}: posterior means on their ` +
    `first two principal components (${(100 * map.explained[0]).toFixed(0)}% and ` +
    `${(100 * map.explained[1]).toFixed(0)}% of the variance). ` +
    (state.path ? "The red line is the last interpolation; the yellow dot is the slider's step." :
      "Interpolate two sentences to draw their path here.") + " Hover a point to read its sentence.";
  drawPath();
}

function drawPath() {
  const layer = $("#path-layer");
  if (!layer || !state.path || !state.path.xy) return;
  const points = state.path.xy.map(state.scale);
  layer.replaceChildren(svgNode("polyline", { class: "path", points: points.map((p) => p.join(",")).join(" ") }));
  points.forEach(([x, y], i) => {
    const dot = svgNode("circle", { cx: x, cy: y, r: 5, class: i === state.step ? "step current" : "step" });
    dot.append(Object.assign(svgNode("title", {}), { textContent: `${i}: ${state.path.path[i]}` }));
    layer.append(dot);
  });
  const label = (i, text) => {
    const [x, y] = points[i];
    layer.append(Object.assign(svgNode("text", { x: x + 7, y: y - 7 }), { textContent: text }));
  };
  label(0, "A");
  label(points.length - 1, "B");
}

// ---------------------------------------------------------------- sample, reconstruct, respond, traverse

$("#sample-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit(event.target, "sample-status", async () => {
    fillList($("#sample-list"), (await api("sample", formValues(event.target, ["n", "temperature", "seed"]))).samples);
  });
});

$("#reconstruct-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit(event.target, "sample-status", async () => {
    const data = await api("reconstruct", formValues(event.target, ["n", "temperature", "seed"]));
    $("#reconstruct-mean").textContent = `posterior mean decodes to: ${data.mean}`;
    fillList($("#reconstruct-list"), data.samples);
  });
});

$("#respond-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit(event.target, "respond-status", async () => {
    const data = await api("respond", formValues(event.target, ["n", "temperature", "seed", "label"]));
    fillList($("#respond-list"), data.responses);
  });
});

$("#traverse-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit(event.target, "traverse-status", async () => {
    const data = await api("traverse", formValues(event.target, ["variable", "temperature"]));
    $("#traverse-table tbody").replaceChildren(...data.sentences.map((sentence, c) => {
      const row = document.createElement("tr");
      row.classList.toggle("current", c === data.category);
      row.append(Object.assign(document.createElement("td"), { textContent: c === data.category ? `${c} (its own)` : String(c) }),
        Object.assign(document.createElement("td"), { textContent: sentence }));
      return row;
    }));
  });
});

init().catch((error) => { $("#model-info").textContent = `cannot describe the model: ${error.message}`; });
