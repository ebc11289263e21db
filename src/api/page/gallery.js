// The gallery view: uploads (drag and drop or the file picker, each file posted raw with its
// progress), URL submissions, and the cards of every image, newest first, paged by cursor.
// The tab's own submissions appear at once as queued and turn done or failed live.

import { api, upload } from "./api.js";
import { bus, watch } from "./live.js";
import { badge, h, picture, plural, retry, state, title } from "./ui.js";

const PAGE = 24;
const PARALLEL = 3;
const cards = new Map(); // hash -> {view, el, preview}
let cursor; // undefined: first page not read yet; null: no more pages
let loading = false;
const $ = (id) => document.getElementById(id);

/** The last view the gallery holds for `hash`, if any. */
export const known = (hash) => cards.get(hash)?.view;

function card(view, preview) {
  const faces = view.status === "done" ? plural(view.faces, "face") : "";
  return h(
    "a.card",
    { href: `#/image/${view.hash}`, "data-hash": view.hash, "data-status": view.status, title: (view.names || []).join(", ") },
    picture(view, { preview, frame: 1 }),
    h(
      "div.meta",
      {},
      h("span.name", {}, title(view)),
      view.names?.length > 1 ? h("span.more-names", {}, `+${view.names.length - 1} more`) : null,
      h("span.facts", {}, badge(view.status), faces ? h("span.count", {}, faces) : null),
      view.status === "failed" && view.reason ? h("span.reason", {}, view.reason) : null,
    ),
  );
}

/** Adds or updates a card; `top` puts a new one first. Done or failed never go back to queued. */
function put(view, { top = false, preview } = {}) {
  const old = cards.get(view.hash);
  if (old && old.view.status !== "queued" && view.status === "queued") return;
  const entry = { view: { ...old?.view, ...view }, preview: preview || old?.preview };
  if (!entry.view.names?.length && old?.view.name) entry.view.name = old.view.name;
  entry.el = card(entry.view, entry.preview);
  if (old) old.el.replaceWith(entry.el);
  else if (top) $("grid").prepend(entry.el);
  else $("grid").append(entry.el);
  cards.set(view.hash, entry);
  empty();
}

function empty() {
  const box = $("gallery-state");
  if (cards.size > 0 || cursor === undefined) {
    if (box.dataset.kind === "empty") box.replaceChildren();
    return;
  }
  if (box.dataset.kind === "error") return;
  box.dataset.kind = "empty";
  box.replaceChildren(state("empty", "No images yet. Drop photos above, choose files, or add an image URL: faces are found in a few seconds."));
}

async function loadMore() {
  if (loading || cursor === null) return;
  loading = true;
  const box = $("gallery-state");
  const more = $("more");
  more.disabled = true;
  if (cursor === undefined) {
    box.dataset.kind = "loading";
    box.replaceChildren(state("loading", "Loading images…"));
  }
  try {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await api(`/api/v1/images?limit=${PAGE}${q}`);
    for (const view of page.images) if (!cards.has(view.hash)) put(view);
    cursor = page.next_cursor || null;
    box.dataset.kind = "";
    box.replaceChildren();
  } catch (e) {
    box.dataset.kind = "error";
    box.replaceChildren(state("error", `The images could not be loaded: ${e.message}`, retry(e, () => loadMore())));
  } finally {
    loading = false;
    more.disabled = false;
    more.hidden = !cursor;
    empty();
  }
}

function row(file) {
  const progress = h("progress", { max: "1", value: "0", "aria-label": `Upload of ${file.name}` });
  const result = h("span.result", { role: "status" }, "Waiting…");
  const el = h("li.upload", {}, h("span.file", {}, file.name), h("span.size", {}, size(file.size)), progress, result);
  $("uploads").prepend(el);
  $("uploads-bar").hidden = false;
  return { el, progress, result };
}

const size = (n) => (n < 1024 * 1024 ? `${Math.max(1, Math.round(n / 1024))} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`);

function settle(r, kind, text, hash) {
  r.el.className = `upload ${kind}`;
  r.result.textContent = text;
  const name = r.el.querySelector(".file");
  if (hash && name.tagName !== "A") name.replaceWith(h("a.file", { href: `#/image/${hash}` }, name.textContent));
}

function clearFinished() {
  for (const el of $("uploads").querySelectorAll(".upload.done, .upload.error")) el.remove();
  $("uploads-bar").hidden = !$("uploads").children.length;
}

const follows = new Map(); // hash -> upload rows waiting for the outcome

function accepted(r, answer, preview) {
  put({ hash: answer.hash, status: answer.status, name: answer.name, names: [] }, { top: true, preview });
  if (answer.status === "done") {
    settle(r, "done", "Already known", answer.hash);
    api(`/api/v1/images/${answer.hash}`).then((v) => put(v), () => {});
    return;
  }
  settle(r, "queued", "Uploaded, finding faces…", answer.hash);
  const rows = follows.get(answer.hash) || [];
  follows.set(answer.hash, [...rows, r]);
  watch(answer.hash);
  const now = cards.get(answer.hash)?.view;
  if (now && now.status !== "queued") outcome(now);
}

function outcome(view) {
  for (const r of follows.get(view.hash) || []) {
    if (view.status === "done") settle(r, "done", `Done: ${plural(view.faces, "face")}`);
    else settle(r, "error", `Failed: ${view.reason || "the workers gave up on it"}`);
  }
  follows.delete(view.hash);
}

const waiting = [];
let running = 0;

function send(files) {
  for (const file of files) waiting.push({ file, r: row(file) });
  pump();
}

function pump() {
  while (running < PARALLEL && waiting.length) {
    const { file, r } = waiting.shift();
    running++;
    r.result.textContent = "Uploading…";
    upload(file, (p) => (r.progress.value = p))
      .then(
        (answer) => {
          r.progress.value = 1;
          accepted(r, answer, URL.createObjectURL(file));
        },
        (e) => settle(r, "error", `Not uploaded: ${e.message}`),
      )
      .finally(() => {
        running--;
        pump();
      });
  }
}

async function submitUrl(event) {
  event.preventDefault();
  const input = $("url");
  const error = $("url-error");
  error.textContent = "";
  if (!input.value.trim() || !input.checkValidity()) {
    error.textContent = "Enter a full http:// or https:// address of an image.";
    input.focus();
    return;
  }
  const button = event.submitter || $("url-form").querySelector("button");
  button.disabled = true;
  const r = row({ name: input.value.trim(), size: 0 });
  r.el.querySelector(".size").textContent = "URL";
  try {
    const answer = await api("/api/v1/urls", { method: "POST", json: { url: input.value.trim() } });
    r.progress.value = 1;
    accepted(r, answer);
    input.value = "";
  } catch (e) {
    settle(r, "error", `Not added: ${e.message}`);
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
}

/** Builds the gallery once; it stays alive (uploads go on) while other views show. */
export function initGallery() {
  const drop = $("drop");
  const input = $("files");
  input.addEventListener("change", () => {
    send([...input.files]);
    input.value = "";
  });
  for (const t of ["dragenter", "dragover"]) {
    drop.addEventListener(t, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const t of ["dragleave", "drop"]) drop.addEventListener(t, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    send([...e.dataTransfer.files]);
  });
  // A drop beside the zone must not navigate away from the page.
  for (const t of ["dragover", "drop"]) window.addEventListener(t, (e) => e.preventDefault());
  $("url-form").addEventListener("submit", submitUrl);
  $("more").addEventListener("click", loadMore);
  $("clear").addEventListener("click", clearFinished);
  new IntersectionObserver((seen) => seen.some((s) => s.isIntersecting) && cursor && loadMore(), {
    rootMargin: "400px",
  }).observe($("more").parentElement);
  bus.addEventListener("image", ({ detail: view }) => {
    if (cards.has(view.hash)) put(view);
    else if (view.status === "done" && cursor !== undefined) put(view, { top: true });
    outcome(view);
  });
  loadMore();
}
