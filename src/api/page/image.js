// An image's page (#/image/<hash>): the larger picture with its face boxes, every name, and
// the images sharing a face, nearest first, with a tolerance slider that only gets stricter.

import { api } from "./api.js";
import { bus } from "./live.js";
import { badge, h, picture, plural, retry, short, state, title } from "./ui.js";

const DEFAULT = 0.6;
let current = null; // the hash shown
let shown = ""; // what the shown record said (status and names), to redraw only on a change
let asked = 0; // the newest matches request (older answers are dropped)

const distance = (d) => d.toFixed(3);

function matchItem(m) {
  const view = { hash: m.hash, names: m.names, thumbnail: true };
  return h(
    "li",
    { "data-match-hash": m.hash },
    h(
      "a.match",
      { href: `#/image/${m.hash}` },
      h("span.mini", {}, picture(view, { frame: 1, alt: title(view) })),
      h("span.match-names", { title: m.names.join(", ") }, m.names.map(short).join(", ") || `${m.hash.slice(0, 12)}…`),
      h("span.distance", { title: "Face distance: lower is more alike" }, distance(m.distance)),
    ),
  );
}

async function matches(section, hash, tolerance) {
  const mine = ++asked;
  const list = section.querySelector(".matches");
  const summary = section.querySelector(".match-summary");
  list.setAttribute("aria-busy", "true");
  try {
    const q = tolerance < DEFAULT ? `?tolerance=${tolerance.toFixed(2)}` : "";
    const found = await api(`/api/v1/images/${hash}/matches${q}`);
    if (mine !== asked || current !== hash) return;
    list.replaceChildren(...found.map(matchItem));
    list.dataset.tolerance = tolerance.toFixed(2);
    summary.replaceChildren();
    if (found.length) {
      summary.textContent = `${plural(found.length, "image")} share a face at distance ≤ ${tolerance.toFixed(2)}, nearest first.`;
    } else if (tolerance < DEFAULT) {
      summary.append(state("empty", `No image shares a face at distance ≤ ${tolerance.toFixed(2)}. Move the slider right to allow looser matches.`));
    } else {
      summary.append(state("empty", "No other image shares a face with this one yet. Upload more photos of the same people to see matches."));
    }
  } catch (e) {
    if (mine !== asked) return;
    list.replaceChildren();
    summary.replaceChildren(state("error", `The matches could not be loaded: ${e.message}`, retry(e, () => matches(section, hash, tolerance))));
  } finally {
    if (mine === asked) list.removeAttribute("aria-busy");
  }
}

function slider(section, hash) {
  const input = h("input", { type: "range", id: "tolerance", min: "0.3", max: String(DEFAULT), step: "0.01", value: String(DEFAULT) });
  const output = h("output", { for: "tolerance" }, DEFAULT.toFixed(2));
  let timer;
  input.addEventListener("input", () => {
    output.textContent = Number(input.value).toFixed(2);
    clearTimeout(timer);
    timer = setTimeout(() => matches(section, hash, Number(input.value)), 120);
  });
  return h(
    "div.tolerance",
    {},
    h("label", { for: "tolerance" }, "Tolerance ", output),
    input,
    h("div.scale", { "aria-hidden": "true" }, h("span", {}, "0.30 stricter"), h("span", {}, "0.60 default")),
  );
}

function render(section, view) {
  shown = `${view.status} ${(view.names || []).join("\n")}`;
  const names = view.names?.length ? view.names : [];
  const facts = [badge(view.status)];
  if (view.status === "done") facts.push(h("span.count", {}, plural(view.faces, "face")));
  let note = null;
  if (view.status === "queued") note = state("loading", "Queued: the workers have not processed this image yet. This page updates when they have.");
  if (view.status === "failed") note = state("error", `The workers gave up on this image: ${view.reason || "no reason recorded"}.`);
  if (view.status === "unknown") note = state("empty", "facerec does not know this image: it was never stored, or it was erased. Go back to the images to upload it.");
  const details = h(
    "div.details",
    {},
    h("h1", { tabindex: "-1" }, title(view)),
    h("p.facts", {}, ...facts),
    note,
    names.length ? h("h2", {}, plural(names.length, "name")) : null,
    names.length ? h("ul.names", {}, ...names.map((n) => h("li", {}, n))) : null,
    h("p.hash", {}, h("span.muted", {}, "SHA-256 "), h("code", {}, view.hash)),
  );
  const figure = h("figure.large", {}, picture(view, { frame: 0 }));
  const found = h(
    "section.matches-box",
    { "aria-labelledby": "matches-title" },
    h("h2", { id: "matches-title" }, "Matches"),
    slider(section, view.hash),
    h("div.match-summary", { role: "status" }),
    h("ol.matches", {}),
  );
  section.replaceChildren(
    h("a.back", { href: "#/" }, "← All images"),
    h("div.image-page", {}, figure, h("div.side", {}, details, view.status === "done" ? found : null)),
  );
  section.querySelector("h1").focus({ preventScroll: true });
  if (view.status === "done") matches(section, view.hash, DEFAULT);
}

async function load(section, hash) {
  try {
    const view = await api(`/api/v1/images/${hash}`);
    if (current === hash) render(section, view);
  } catch (e) {
    if (current !== hash) return;
    section.replaceChildren(
      h("a.back", { href: "#/" }, "← All images"),
      state("error", `This image could not be loaded: ${e.message}`, retry(e, () => load(section, hash))),
    );
  }
}

/** Shows image `hash` in `section`. */
export function showImage(section, hash) {
  current = hash;
  section.replaceChildren(h("a.back", { href: "#/" }, "← All images"), state("loading", "Loading the image…"));
  load(section, hash);
}

/** Leaves the image page (answers still in flight are dropped). */
export function hideImage() {
  current = null;
}

bus.addEventListener("image", ({ detail: view }) => {
  const section = document.getElementById("view-image");
  if (!current || section.hidden) return;
  if (view.hash === current) {
    if (shown !== `${view.status} ${(view.names || []).join("\n")}`) render(section, view);
  }
  else if (view.status === "done") {
    // A new image may match this one: refresh the list at the slider's tolerance.
    const input = section.querySelector("#tolerance");
    if (input) matches(section, current, Number(input.value));
  }
});
