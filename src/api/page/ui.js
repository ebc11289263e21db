// Small DOM helpers shared by the views: an element builder, the picture with its face
// boxes (percentages of the image, so they scale), status badges, the face crop, states.
// Styles are set through the CSSOM only (the CSP forbids inline style attributes).

import { askToken, thumbnail } from "./api.js";

/** h("a.card", {href}, child...): an element; strings become text nodes, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const pct = (x) => `${Math.max(0, Math.min(100, x * 100)).toFixed(3)}%`;

/** A name as shown where space is short: a path's or URL's last segment (lists show it whole). */
export const short = (name) => name.replace(/[?#].*$/, "").split("/").filter(Boolean).pop() || name;

/** The first name (short), or a short hash when there is none yet. */
export const title = (view) => {
  const name = view.names?.[0] || view.name;
  return name ? short(name) : `${view.hash.slice(0, 12)}…`;
};

/** The status badge: queued, done, failed. */
export function badge(status) {
  const label = { queued: "Queued", done: "Done", failed: "Failed", unknown: "Unknown" }[status] || status;
  return h(`span.badge.${status}`, {}, label);
}

/** The face boxes of `view`, placed in percent of its width and height. */
function boxes(view) {
  const { width: w, height: hgt } = view;
  if (!w || !hgt) return [];
  return (view.boxes || []).map((b, i) => {
    const el = h("span.box", { "data-face": b.id || String(i), title: `Face ${i + 1}` });
    const left = Math.max(0, b.left);
    const top = Math.max(0, b.top);
    el.style.left = pct(left / w);
    el.style.top = pct(top / hgt);
    el.style.width = pct((Math.min(w, b.right) - left) / w);
    el.style.height = pct((Math.min(hgt, b.bottom) - top) / hgt);
    return el;
  });
}

// Thumbnails are fetched when their picture enters the viewport, not when the card is
// made: the first load carries only what is seen (Chromium's own loading="lazy" distance
// covers the whole first page and more, and blob: URLs bypass it). A small thumbnail
// arrives in a few milliseconds, so scrolling shows no gap worth a margin.
const loaders = new WeakMap();
const nearView = new IntersectionObserver(
  (entries) => {
    for (const { target, isIntersecting } of entries) {
      if (!isIntersecting) continue;
      nearView.unobserve(target);
      loaders.get(target)?.();
      loaders.delete(target);
    }
  },
  { rootMargin: "0px" },
);

/**
 * The thumbnail size `el` needs: its longer rendered side in device pixels, allowed to be
 * scaled up by at most 15% and rounded up to a multiple of 32 (cards of one size share one
 * URL and its cache entry; a 183 px card gets 160 px, 30% fewer bytes than 192); undefined
 * for the full stored thumbnail when it is shown large (256 px by default).
 */
function sizeFor(el) {
  const { width, height } = el.getBoundingClientRect();
  const px = Math.ceil((Math.max(width, height) * (window.devicePixelRatio || 1)) / 1.15 / 32) * 32;
  return px > 0 && px < 256 ? px : undefined;
}

/** Runs `load` once `el` comes near the viewport. */
function whenNear(el, load) {
  loaders.set(el, load);
  nearView.observe(el);
}

/**
 * The picture: the thumbnail (or `preview`, a local blob: URL, or a neutral placeholder)
 * with every face box over it. `frame` is the width/height ratio of the box it is fitted in
 * (cards), or 0 to let it take its own height (the image page).
 */
export function picture(view, { preview, frame = 1, alt } = {}) {
  const ratio = view.width && view.height ? view.width / view.height : 0;
  const pic = h("div.pic");
  if (ratio) pic.style.aspectRatio = `${view.width} / ${view.height}`;
  if (frame && ratio) {
    const w = Math.min(1, ratio / frame);
    const hh = Math.min(1, frame / ratio);
    Object.assign(pic.style, { position: "absolute", width: pct(w), height: pct(hh), left: pct((1 - w) / 2), top: pct((1 - hh) / 2) });
  } else if (frame) {
    pic.classList.add("fill");
  } else if (ratio) {
    pic.style.width = `min(100%, calc(68vh * ${ratio.toFixed(4)}))`;
  } else {
    pic.classList.add("square");
  }
  const describe = alt || `${title(view)}: ${plural(view.faces || 0, "face")}`;
  const show = (src) => {
    const img = h("img", { alt: describe, decoding: "async", loading: "lazy" });
    img.addEventListener("error", () => img.replaceWith(placeholder(describe)), { once: true });
    img.src = src;
    pic.prepend(img);
  };
  if (view.thumbnail) {
    whenNear(pic, () =>
      thumbnail(view.hash, sizeFor(pic)).then(show, () => (preview ? show(preview) : pic.prepend(placeholder(describe)))),
    );
  } else if (preview) {
    show(preview);
  } else {
    pic.prepend(placeholder(describe));
  }
  pic.append(...boxes(view));
  return frame ? h("div.frame", {}, pic) : pic;
}

function placeholder(label) {
  return h("div.placeholder", { role: "img", "aria-label": `${label} (no preview stored)` }, h("span", {}, "No preview"));
}

/** A square crop of one face from its image's thumbnail (CSS background, so it scales). */
export function faceCrop(face, label) {
  const el = h("div.crop", { role: "img", "aria-label": label });
  const { width: w, height: hgt, box } = face;
  const side = Math.min(w, hgt, Math.max(box.right - box.left, box.bottom - box.top) * 1.6);
  const cx = (box.left + box.right) / 2;
  const cy = (box.top + box.bottom) / 2;
  const x0 = Math.max(0, Math.min(w - side, cx - side / 2));
  const y0 = Math.max(0, Math.min(hgt - side, cy - side / 2));
  el.style.backgroundSize = `${((w / side) * 100).toFixed(3)}% ${((hgt / side) * 100).toFixed(3)}%`;
  const px = w > side ? (x0 / (w - side)) * 100 : 50;
  const py = hgt > side ? (y0 / (hgt - side)) * 100 : 50;
  el.style.backgroundPosition = `${px.toFixed(3)}% ${py.toFixed(3)}%`;
  whenNear(el, () =>
    thumbnail(face.hash)
      .then(loaded)
      .then(
        (src) => (el.style.backgroundImage = `url("${src}")`),
        () => {
          el.classList.add("missing");
          el.setAttribute("aria-label", `${label} (no preview stored)`);
        },
      ),
  );
  return el;
}

/** Resolves with `src` once it has loaded as an image (a CSS background would fail silently). */
function loaded(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(src);
    img.onerror = () => reject(new Error(`${src} did not load`));
    img.src = src;
  });
}

/** A state message (loading, empty, error) with an optional action button. */
export function state(kind, text, action) {
  const el = h(`div.state.${kind}`, { role: kind === "error" ? "alert" : "status" }, h("p", {}, text));
  if (action) el.append(h("button.secondary", { type: "button", onclick: action.run }, action.label));
  return el;
}

/** The action that answers an API error: enter the token on a 401, else try again. */
export function retry(error, run) {
  if (error.status !== 401) return { label: "Try again", run };
  return { label: "Enter token", run: async () => (await askToken()) && run() };
}
