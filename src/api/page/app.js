// The page's entry: the hash router (#/, #/image/<hash>, #/people), the live indicator.

import { initGallery } from "./gallery.js";
import { hideImage, showImage } from "./image.js";
import { bus, start } from "./live.js";
import { showPeople } from "./people.js";

const views = ["gallery", "image", "people"];
let galleryScroll = 0;
let currentView = "gallery";
let lastImage = null; // back in the gallery, keyboard focus returns to this image's card

function show(name) {
  if (currentView === "gallery" && name !== "gallery") galleryScroll = window.scrollY;
  for (const v of views) document.getElementById(`view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  currentView = name;
  return document.getElementById(`view-${name}`);
}

function route() {
  const image = /^#\/image\/([0-9a-f]{64})$/.exec(location.hash);
  if (image) {
    lastImage = image[1];
    showImage(show("image"), image[1]);
    window.scrollTo(0, 0);
    return;
  }
  hideImage();
  if (location.hash === "#/people") {
    showPeople(show("people"));
    window.scrollTo(0, 0);
    return;
  }
  const from = currentView;
  show("gallery");
  document.title = "facerec";
  if (from !== "gallery") {
    window.scrollTo(0, galleryScroll);
    document.querySelector(`[data-hash="${lastImage}"]`)?.focus({ preventScroll: true });
  }
}

bus.addEventListener("live", ({ detail: on }) => {
  const el = document.getElementById("live");
  el.textContent = on ? "Live" : "Reconnecting…";
  el.classList.toggle("on", on);
  el.title = on ? "Updates arrive as images are processed" : "The event stream is down: checking submissions every few seconds";
});

window.addEventListener("hashchange", route);
initGallery();
route();
start();
