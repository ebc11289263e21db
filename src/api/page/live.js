// Live updates: the event stream when it is up, and polling of the images this tab
// submitted (every 1.5 s while the stream is down, every 5 s as a safety net while it is up).
// Views listen on `bus` for `image` (an ImageView that is done or failed) and `live`.

import { api, follow } from "./api.js";

export const bus = new EventTarget();
const pending = new Set();
let live = false;

function publish(view) {
  if (view.status === "done" || view.status === "failed") pending.delete(view.hash);
  bus.dispatchEvent(new CustomEvent("image", { detail: view }));
}

/** Polls `hash` until it is done or failed (the event stream may say so first). */
export function watch(hash) {
  pending.add(hash);
}

async function poll() {
  for (const hash of [...pending]) {
    try {
      const view = await api(`/api/v1/images/${hash}`, { ask: false });
      if (view.status === "done" || view.status === "failed") publish(view);
    } catch {
      /* tried again on the next round */
    }
  }
  setTimeout(poll, live ? 5000 : 1500);
}

/** Starts following the server. */
export function start() {
  follow(publish, (on) => {
    live = on;
    bus.dispatchEvent(new CustomEvent("live", { detail: on }));
  });
  setTimeout(poll, 1500);
}
