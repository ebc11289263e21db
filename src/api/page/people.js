// People (#/people): faces grouped across images, largest group first, each as a face crop
// from its thumbnail, its names and its images.

import { api } from "./api.js";
import { h, faceCrop, picture, plural, retry, short, state } from "./ui.js";

const SHOWN = 8;

function person(p, i) {
  const names = p.names.length ? p.names.map(short) : [`Person ${i + 1}`];
  const label = names.slice(0, 3).join(", ") + (names.length > 3 ? ` +${names.length - 3}` : "");
  const images = p.images.slice(0, SHOWN).map((hash) =>
    h("a.mini", { href: `#/image/${hash}`, "aria-label": `Image ${hash.slice(0, 12)}` }, picture({ hash, thumbnail: true }, { frame: 1, alt: "" })),
  );
  if (p.images.length > SHOWN) images.push(h("span.mini.rest", {}, `+${p.images.length - SHOWN}`));
  return h(
    "article.person",
    { "data-person": p.face?.box?.id || String(i) },
    h(
      "a.person-head",
      { href: `#/image/${p.face?.hash || p.images[0]}` },
      p.face ? faceCrop(p.face, `Face of ${label}`) : h("div.crop.missing", { role: "img", "aria-label": label }),
      h("span.person-names", { title: p.names.join(", ") }, label),
      h("span.muted", {}, plural(p.images.length, "image")),
    ),
    h("div.strip", {}, ...images),
  );
}

async function load(section) {
  const body = section.querySelector(".people-body");
  body.replaceChildren(state("loading", "Grouping faces…"));
  try {
    const { people } = await api("/api/v1/people?limit=100");
    if (!people.length) {
      body.replaceChildren(state("empty", "No faces yet. Upload photos with faces on the Images page: the same person's faces are grouped here."));
      return;
    }
    body.replaceChildren(h("div.people", {}, ...people.map(person)));
  } catch (e) {
    body.replaceChildren(state("error", `People could not be loaded: ${e.message}`, retry(e, () => load(section))));
  }
}

/** Shows the people in `section` (read again at each visit). */
export function showPeople(section) {
  section.replaceChildren(
    h("div.section-head", {}, h("h1", { tabindex: "-1" }, "People"), h("span.muted", {}, "Faces grouped across images, largest group first")),
    h("div.people-body"),
  );
  section.querySelector("h1").focus({ preventScroll: true });
  load(section);
}
