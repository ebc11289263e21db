// The API client: JSON calls with the optional bearer token (asked for on a 401, kept in
// sessionStorage), raw uploads through XMLHttpRequest for progress, the event stream read
// from fetch() so the token can go in a header, and thumbnails as URLs the page may show.

const KEY = "facerec.token";

/** An API error: the HTTP status (0: unreachable) and the problem document's detail. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export const token = () => sessionStorage.getItem(KEY) || "";
const auth = () => (token() ? { Authorization: `Bearer ${token()}` } : {});
const UNREACHABLE = "The server cannot be reached. Check that facerec is running, then try again.";

let asking = null;

/** Asks for the token (one dialog for every 401 at once); true when one was entered. */
export function askToken() {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = dialog.querySelector("form");
  const input = form.elements.token;
  input.value = token();
  document.getElementById("token-why").textContent = token()
    ? "The server refused this token. Enter the current one."
    : "This server needs its API token (FACEREC_API_TOKEN) for every request.";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const ok = dialog.returnValue === "ok" && input.value.trim() !== "";
        if (ok) sessionStorage.setItem(KEY, input.value.trim());
        asking = null;
        resolve(ok);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
  });
  return asking;
}

async function detailOf(res) {
  try {
    const p = await res.json();
    if (p && p.detail) return p.detail;
  } catch {
    /* not a problem document */
  }
  return `The server answered ${res.status} ${res.statusText}`.trim();
}

const NEEDS_TOKEN = "This server needs its API token. Enter it to continue.";

/** A JSON API call; throws ApiError with the problem's detail. */
export async function api(path, { method = "GET", json, signal, ask = true } = {}) {
  for (;;) {
    const headers = { Accept: "application/json", ...auth() };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, signal, body: json === undefined ? undefined : JSON.stringify(json) });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, UNREACHABLE);
    }
    if (res.status === 401) {
      if (ask && (await askToken())) continue;
      throw new ApiError(401, NEEDS_TOKEN);
    }
    if (!res.ok) throw new ApiError(res.status, await detailOf(res));
    return res.json();
  }
}

/** Posts one file raw to `POST /api/v1/images?name=`, reporting progress (0..1). */
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const send = () => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/api/v1/images?name=${encodeURIComponent(file.name)}`);
      for (const [k, v] of Object.entries(auth())) xhr.setRequestHeader(k, v);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = async () => {
        if (xhr.status === 401) {
          if (await askToken()) return send();
          return reject(new ApiError(401, NEEDS_TOKEN));
        }
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
        else reject(new ApiError(xhr.status, body?.detail || `The server answered ${xhr.status}`));
      };
      xhr.onerror = () => reject(new ApiError(0, "The upload did not reach the server. Check the connection and try again."));
      xhr.send(file);
    };
    send();
  });
}

const blobs = new Map();

/**
 * A URL for the image's thumbnail, at most `px` on its long side when given (the server
 * scales the stored one down): the route itself, or a blob: URL when a token is needed.
 */
export async function thumbnail(hash, px) {
  const url = `/api/v1/images/${hash}/thumbnail${px ? `?px=${px}` : ""}`;
  if (!token()) return url;
  const key = `${hash}:${px || ""}`;
  if (!blobs.has(key)) {
    blobs.set(
      key,
      fetch(url, { headers: auth() }).then(async (r) => {
        if (!r.ok) throw new ApiError(r.status, await detailOf(r));
        return URL.createObjectURL(await r.blob());
      }),
    );
  }
  return blobs.get(key).catch((e) => {
    blobs.delete(key);
    throw e;
  });
}

/**
 * Follows `GET /api/v1/events`: calls onImage(view) for each `image` event and onState(live)
 * when the stream opens or drops; reconnects with back-off (1 s doubling to 30 s).
 */
export function follow(onImage, onState) {
  let wait = 1000;
  const connect = async () => {
    try {
      const res = await fetch("/api/v1/events", { headers: { Accept: "text/event-stream", ...auth() }, cache: "no-store" });
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      onState(true);
      wait = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end), onImage);
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      /* dropped or refused: retry below */
    }
    onState(false);
    setTimeout(connect, wait);
    wait = Math.min(wait * 2, 30000);
  };
  connect();
}

function dispatch(block, onImage) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (event !== "image" || data.length === 0) return;
  try {
    onImage(JSON.parse(data.join("\n")));
  } catch {
    /* a malformed event is skipped */
  }
}
