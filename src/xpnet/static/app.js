// xpnet serve's page: draw on the canvas (mouse, touch or pen) or drop a picture; POST /predict answers.
// Plain JavaScript, no build step, nothing fetched from anywhere but this server.
"use strict";

const TOP = 5; // classes listed
const EVERY_MS = 150; // while drawing, at most one request this often; the last stroke is always sent

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const $ = (id) => document.getElementById(id);
let maxBody = 10 << 20;
let drawing = false;
let last = null;
let inked = false;
let timer = 0;
let busy = false;
let encoding = 0; // canvases being turned into PNGs
let queued = null; // the newest picture waiting while a request is in flight: older ones are dropped

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * pad.width) / r.width, y: ((e.clientY - r.top) * pad.height) / r.height };
}

function stroke(from, to, e) {
  const width = Number($("pen").value);
  // A pen's pressure thickens the line as paper would; a mouse or a finger draws at the chosen width.
  const w = e.pointerType === "pen" && e.pressure > 0 ? width * (0.4 + 1.2 * e.pressure) : width;
  ctx.strokeStyle = "#111";
  ctx.lineWidth = w;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  try {
    pad.setPointerCapture(e.pointerId); // strokes that leave the canvas still end with pointerup
  } catch {
    // a pointer the browser does not track (a synthetic event): draw without capture
  }
  drawing = true;
  last = point(e);
  stroke(last, last, e);
  soon();
});

pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = point(ev);
    stroke(last, p, ev);
    last = p;
  }
  soon();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  clearTimeout(timer);
  timer = 0;
  sendPad();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function soon() {
  if (!timer) timer = setTimeout(() => { timer = 0; sendPad(); }, EVERY_MS);
}

function sendPad() {
  if (!inked) return;
  encoding += 1; // toBlob answers later: until then the newest picture has no answer yet
  document.body.dataset.state = "asking";
  pad.toBlob((blob) => {
    encoding -= 1;
    if (blob) send(blob, "drawing.png");
  }, "image/png");
}

async function send(body, name) {
  if (busy) {
    queued = [body, name];
    return;
  }
  busy = true;
  // body[data-state]: "asking" while a request is in flight, then "answered" or "error" for the newest picture.
  document.body.dataset.state = "asking";
  let state = "error";
  try {
    const url = `/predict?top=${TOP}&seen=1&file=${encodeURIComponent(name)}`;
    const r = await fetch(url, { method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
    let answer;
    try {
      answer = await r.json();
    } catch {
      answer = { error: `the server answered ${r.status} without JSON` };
    }
    if (!r.ok || answer.error) showError(answer.file ? `${answer.file}: ${answer.error}` : answer.error);
    else {
      show(answer);
      state = "answered";
    }
  } catch (err) {
    showError(`no answer from the server (${err.message}): is xpnet serve still running?`);
  } finally {
    busy = false;
    if (queued) {
      const next = queued;
      queued = null;
      send(...next);
    } else if (!encoding) {
      document.body.dataset.state = state;
    }
  }
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function label(c) {
  return c.name === String(c.class) ? c.name : `${c.class} ${c.name}`;
}

function show(answer) {
  const status = $("status");
  status.classList.remove("error");
  status.textContent = answer.file === "drawing.png" ? "Your drawing is" : `${answer.file} is`;
  $("best").hidden = false;
  $("best-name").textContent = label(answer);
  $("best-p").textContent = percent(answer.probability);
  const list = $("top");
  list.replaceChildren(
    ...answer.top.map((c) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = label(c);
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.max(0.5, 100 * c.probability)}%`;
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = percent(c.probability);
      li.append(name, bar, p);
      return li;
    }),
  );
  if (answer.seen) {
    $("seen").src = answer.seen;
    $("seen-figure").hidden = false;
  }
}

function showError(message) {
  const status = $("status");
  status.textContent = message;
  status.classList.add("error");
  $("best").hidden = true;
  $("top").replaceChildren();
  $("seen-figure").hidden = true;
}

async function openFile(file) {
  if (!file) return;
  if (file.size > maxBody) {
    showError(`${file.name}: ${file.size} bytes, more than the ${maxBody} xpnet serve reads; shrink the picture`);
    document.body.dataset.state = "error";
    return;
  }
  clearPad();
  try {
    // Shown on the canvas when the browser can decode it (a .npy it cannot); drawing on it sends the canvas.
    const bitmap = await createImageBitmap(file);
    const s = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * s;
    const h = bitmap.height * s;
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    inked = true;
  } catch {
    // not a picture the browser reads: the server says what it is
  }
  send(file, file.name);
}

$("clear").addEventListener("click", () => {
  clearPad();
  $("status").classList.remove("error");
  $("status").textContent = "Draw a digit: the answer appears as you draw.";
  $("best").hidden = true;
  $("top").replaceChildren();
  $("seen-figure").hidden = true;
  document.body.dataset.state = "idle";
});

$("file").addEventListener("change", (e) => {
  openFile(e.target.files[0]);
  e.target.value = "";
});

const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  openFile(e.dataTransfer.files[0]);
});
// A picture dropped anywhere else on the page must not make the browser leave it to show the file.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

async function loadModel() {
  try {
    const r = await fetch("/model");
    const m = await r.json();
    maxBody = m.max_body || maxBody;
    const digits = m.classes.every((c, i) => c === String(i));
    const classes = digits ? `classes ${m.classes[0]}–${m.classes[m.classes.length - 1]}` : m.classes.join(", ");
    const accuracy = m.test_accuracy == null ? "test accuracy not recorded" : `test accuracy ${percent(m.test_accuracy)}`;
    const saved = m.saved.replace("T", " ").replace("+00:00", " UTC");
    $("model").textContent =
      `${m.dataset} model (${m.layers.join("-")}, ${m.side}x${m.side} pixels): ${classes}; ${accuracy} ` +
      `at epoch ${m.epoch}; saved ${saved}; on ${m.backend}`;
    if (!digits) document.querySelector("h1").textContent = "Draw or drop a picture";
  } catch (err) {
    $("model").textContent = `could not read the model's description (${err.message})`;
  }
}

clearPad();
loadModel();
