// A stand-in for `facerec serve` that implements /work/contract.md's HTTP side with node's
// standard library only, so the page and its browser tests run without Rust, dlib or servers.
//
// It serves the page from src/api/page/ (the same headers as src/api/page.rs) and /api/v1 over
// an in-memory index. "Processing" is a lookup in the repository's recorded encodings
// (fixtures/encodings/face_recognition_test_images.json, what dlib found in face_recognition's
// sample images): a submitted image whose SHA-256 is recorded gets those faces, boxes and real
// distances; another decodable image gets no faces; an image whose header cannot be read fails
// (dead-lettered, with a reason). The thumbnail is the submitted file itself (no decoder here).
//
//   node mock-server.mjs [--port 0] [--token T] [--delay MS] [--seed DIR] [--no-thumbnails]
// prints `listening on http://127.0.0.1:PORT/` once ready. Loopback only.

import { createServer, get as httpGet } from "node:http";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join, extname } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const PAGE_DIR = join(root, "src", "api", "page");
const RECORDING = join(root, "fixtures", "encodings", "face_recognition_test_images.json");
const MAX_BODY = 48 * 1024 * 1024;
const MAX_NAME = 1024;
const TOLERANCE = 0.6;
const CSP =
  "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; " +
  "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
};

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

/** The recorded encodings, by hash. */
const recorded = new Map(
  JSON.parse(readFileSync(RECORDING, "utf8")).images.map((img) => [img.hash, img]),
);

/** Stored images (status done) in storage order, and everything else by hash. */
const stored = []; // {hash, names:Set, width, height, faces:[{box,id,encoding}], thumb, type, matches:Map}
const byHash = new Map();
const queued = new Set();
const failed = new Map(); // hash -> {reason, at}
const streams = new Set();

function problem(res, status, detail, extra = {}) {
  const titles = {
    400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    413: "Payload Too Large", 415: "Unsupported Media Type", 502: "Bad Gateway",
  };
  res.writeHead(status, { "content-type": "application/problem+json", ...extra });
  res.end(JSON.stringify({ type: "about:blank", title: titles[status] || "Error", status, detail }));
}

function json(res, status, value) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

/** The image kind by content, as the API sniffs it, or null. */
function sniff(b) {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from("\x89PNG\r\n\x1a\n", "latin1"))) return "image/png";
  if (b.length >= 6 && /^GIF8[79]a$/.test(b.subarray(0, 6).toString("latin1"))) return "image/gif";
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return "image/bmp";
  if (b.length >= 12 && b.subarray(0, 4).toString() === "RIFF" && b.subarray(8, 12).toString() === "WEBP")
    return "image/webp";
  return null;
}

/** Width and height from a JPEG's SOF or a PNG's IHDR, or null when unreadable. */
function dimensions(b) {
  if (b[0] === 0x89 && b.length >= 24) return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  if (b[0] !== 0xff) return null;
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1];
    const len = b.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker))
      return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
    i += 2 + len;
  }
  return null;
}

function faceId(encoding) {
  const buf = Buffer.alloc(1024);
  encoding.forEach((x, k) => buf.writeDoubleLE(x, k * 8));
  return createHash("sha256").update(buf).digest("hex").slice(0, 16);
}

function distance(a, b) {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += (a[k] - b[k]) ** 2;
  return Math.sqrt(s);
}

function imageDistance(a, b) {
  let best = Infinity;
  for (const f of a.faces) for (const g of b.faces) best = Math.min(best, distance(f.encoding, g.encoding));
  return best;
}

function view(hash) {
  const img = byHash.get(hash);
  if (img) {
    return {
      hash, status: "done", names: [...img.names].sort(), faces: img.faces.length, matches: img.matches.size,
      fingerprint: "mock", width: img.width, height: img.height,
      boxes: img.faces.map((f) => ({ ...f.box, id: f.id })), thumbnail: thumbnails,
    };
  }
  const base = { hash, names: [], faces: 0, matches: 0, fingerprint: null, boxes: [], thumbnail: false };
  const f = failed.get(hash);
  if (f) return { ...base, status: "failed", reason: f.reason, failed_at: f.at };
  return { ...base, status: queued.has(hash) ? "queued" : "unknown" };
}

function broadcast(hash) {
  const frame = `event: image\ndata: ${JSON.stringify(view(hash))}\n\n`;
  for (const res of streams) res.write(frame);
}

/** What a worker does with a queued image, after `delay` ms. */
function process_(hash, name, bytes) {
  const existing = byHash.get(hash);
  if (existing) {
    existing.names.add(name);
    queued.delete(hash);
    broadcast(hash);
    return;
  }
  const dims = dimensions(bytes);
  if (!dims) {
    queued.delete(hash);
    failed.set(hash, { reason: "not a decodable image: the image header cannot be read", at: Math.floor(Date.now() / 1000) });
    broadcast(hash);
    return;
  }
  const rec = recorded.get(hash);
  const faces = (rec ? rec.faces : []).map((f) => ({
    box: { top: f.top, right: f.right, bottom: f.bottom, left: f.left },
    id: faceId(f.encoding),
    encoding: f.encoding,
  }));
  const img = {
    hash, names: new Set([name]), width: rec ? rec.width : dims.width, height: rec ? rec.height : dims.height,
    faces, thumb: bytes, type: sniff(bytes), matches: new Map(),
  };
  for (const other of stored) {
    const d = imageDistance(img, other);
    if (d <= TOLERANCE) {
      img.matches.set(other.hash, d);
      other.matches.set(hash, d);
    }
  }
  stored.push(img);
  byHash.set(hash, img);
  queued.delete(hash);
  failed.delete(hash);
  broadcast(hash);
}

const delay = Number(arg("delay", "700"));
const thumbnails = !process.argv.includes("--no-thumbnails");

function submit(hash, name, bytes) {
  if (!byHash.has(hash)) queued.add(hash);
  setTimeout(() => process_(hash, name, bytes), delay);
}

function checkName(what, name) {
  if (!name) return `the ${what} is empty`;
  if (Buffer.byteLength(name) > MAX_NAME) return `the ${what} is ${Buffer.byteLength(name)} bytes long, the limit is ${MAX_NAME}`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return `the ${what} contains a control character`;
  return null;
}

function checkImage(bytes) {
  if (bytes.length === 0) return [400, "the body is empty: send the image file itself"];
  if (!sniff(bytes)) return [415, "the body is not an image (JPEG, PNG, GIF, BMP or WebP)"];
  return null;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Parts named `file` of a multipart/form-data body: [{name, bytes}]. */
function multipart(body, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  if (!m) return null;
  const delim = Buffer.from(`--${m[1] || m[2]}`);
  const parts = [];
  let at = body.indexOf(delim);
  while (at >= 0) {
    const start = at + delim.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    const next = body.indexOf(delim, start);
    if (next < 0) break;
    const part = body.subarray(start + 2, next - 2);
    const split = part.indexOf("\r\n\r\n");
    const head = part.subarray(0, split).toString();
    const disp = /content-disposition:[^\r\n]*name="([^"]*)"(?:[^\r\n]*filename="([^"]*)")?/i.exec(head);
    if (disp && disp[1] === "file") parts.push({ name: disp[2] ?? "", bytes: part.subarray(split + 4) });
    at = next;
  }
  return parts;
}

const HASH = /^[0-9a-f]{64}$/;

function tolerance(url, res) {
  const t = url.searchParams.get("tolerance");
  if (t === null) return { value: null };
  const v = Number(t);
  if (t.trim() === "" || !Number.isFinite(v) || v < 0 || v > 1) {
    problem(res, 400, `tolerance must be between 0 and 1, got ${t}`);
    return null;
  }
  return { value: v };
}

/** People: faces grouped transitively within the tolerance, largest group first. */
function people(tol, limit) {
  const faces = stored.flatMap((img) => img.faces.map((f) => ({ img, f })));
  const parent = faces.map((_, i) => i);
  const find = (i) => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  for (let i = 0; i < faces.length; i++)
    for (let j = i + 1; j < faces.length; j++)
      if (distance(faces[i].f.encoding, faces[j].f.encoding) <= tol) parent[find(i)] = find(j);
  const groups = new Map();
  faces.forEach((x, i) => {
    const g = groups.get(find(i)) || [];
    g.push(x);
    groups.set(find(i), g);
  });
  return [...groups.values()]
    .map((g) => {
      const images = [...new Set(g.map((x) => x.img.hash))];
      const rep = g[0];
      return {
        images,
        names: [...new Set(g.flatMap((x) => [...x.img.names]))].sort(),
        face: {
          hash: rep.img.hash, box: { ...rep.f.box, id: rep.f.id }, width: rep.img.width, height: rep.img.height,
        },
      };
    })
    .sort((a, b) => b.images.length - a.images.length)
    .slice(0, limit);
}

function fetchLoopback(url) {
  return new Promise((resolve, reject) => {
    httpGet(url, (r) => {
      if (r.statusCode !== 200) {
        r.resume();
        reject(new Error(`the server answered ${r.statusCode}`));
        return;
      }
      readBody(r).then(resolve, reject);
    }).on("error", reject);
  });
}

async function api(req, res, url) {
  const token = arg("token", process.env.TOKEN || "");
  if (token && req.headers.authorization !== `Bearer ${token}`) {
    return problem(res, 401, "this route needs `Authorization: Bearer <FACEREC_API_TOKEN>`", { "www-authenticate": "Bearer" });
  }
  const path = url.pathname;
  const method = req.method;
  const seg = path.split("/").slice(3); // after /api/v1
  if (path === "/api/v1/images" && method === "POST") {
    let body;
    try {
      body = await readBody(req);
    } catch {
      return problem(res, 413, `the body is larger than ${MAX_BODY} bytes`);
    }
    const type = req.headers["content-type"] || "";
    if (type.startsWith("multipart/form-data")) {
      const parts = multipart(body, type);
      if (!parts || parts.length === 0) return problem(res, 400, "the form has no part named `file`");
      for (const p of parts) {
        const bad = checkName("file name", p.name) || checkImage(p.bytes)?.[1];
        if (bad) return problem(res, checkImage(p.bytes)?.[0] || 400, `part "${p.name}": ${bad}`);
      }
      const images = parts.map((p) => {
        const hash = createHash("sha256").update(p.bytes).digest("hex");
        submit(hash, p.name, p.bytes);
        return { hash, name: p.name, status: "queued" };
      });
      return json(res, 202, { images });
    }
    const name = url.searchParams.get("name");
    if (name === null) return problem(res, 400, "`?name=` is required");
    const badName = checkName("name", name);
    if (badName) return problem(res, 400, badName);
    const bad = checkImage(body);
    if (bad) return problem(res, bad[0], bad[1]);
    const hash = createHash("sha256").update(body).digest("hex");
    submit(hash, name, body);
    return json(res, 202, { hash, name, status: "queued" });
  }
  if (path === "/api/v1/images" && method === "GET") {
    const limit = Number(url.searchParams.get("limit") ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      return problem(res, 400, `limit must be between 1 and 100, got ${url.searchParams.get("limit")}`);
    const cursor = url.searchParams.get("cursor");
    let end = stored.length;
    if (cursor !== null) {
      end = Number(cursor);
      if (!/^\d+$/.test(cursor) || end > stored.length) return problem(res, 400, "bad cursor: not one of ours");
    }
    const start = Math.max(0, end - limit);
    const images = stored.slice(start, end).reverse().map((img) => view(img.hash));
    return json(res, 200, start > 0 ? { images, next_cursor: String(start) } : { images });
  }
  if (path === "/api/v1/urls" && method === "POST") {
    let body;
    try {
      body = JSON.parse((await readBody(req)).toString());
    } catch (e) {
      return problem(res, 400, `the body must be JSON {"url": ..., "name": ...}: ${e.message}`);
    }
    if (typeof body !== "object" || body === null || typeof body.url !== "string")
      return problem(res, 400, 'the body must be JSON {"url": ..., "name": ...}: missing field `url`');
    let target;
    try {
      target = new URL(body.url);
    } catch {
      return problem(res, 400, `not a URL: ${body.url}`);
    }
    if (!["http:", "https:"].includes(target.protocol)) return problem(res, 400, "the URL must be http or https");
    const name = body.name ?? body.url;
    const badName = checkName("name", name);
    if (badName) return problem(res, 400, badName);
    if (target.hostname !== "127.0.0.1" || target.protocol !== "http:")
      return problem(res, 502, "the mock server only fetches http://127.0.0.1 URLs");
    let bytes;
    try {
      bytes = await fetchLoopback(target);
    } catch (e) {
      return problem(res, 502, `cannot fetch the URL: ${e.message}`);
    }
    const bad = checkImage(bytes);
    if (bad) return problem(res, bad[0], bad[1].replace("the body", "the URL's content"));
    const hash = createHash("sha256").update(bytes).digest("hex");
    submit(hash, name, bytes);
    return json(res, 202, { hash, name, status: "queued" });
  }
  if (path === "/api/v1/people" && method === "GET") {
    const t = tolerance(url, res);
    if (!t) return;
    const limit = Number(url.searchParams.get("limit") ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return problem(res, 400, "limit must be between 1 and 1000");
    return json(res, 200, { people: people(t.value ?? TOLERANCE, limit) });
  }
  if (path === "/api/v1/events" && method === "GET") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(": connected\n\n");
    streams.add(res);
    const keep = setInterval(() => res.write(": keep-alive\n\n"), 15000);
    req.on("close", () => {
      clearInterval(keep);
      streams.delete(res);
    });
    return;
  }
  if (seg[0] === "images" && seg.length >= 2 && seg.length <= 3) {
    const hash = seg[1];
    if (!HASH.test(hash)) return problem(res, 400, `not a hash: ${hash}`);
    const img = byHash.get(hash);
    if (seg.length === 2 && method === "GET") return json(res, 200, view(hash));
    if (seg.length === 2 && method === "DELETE") {
      if (!img) return json(res, 200, { hash, erased: false, names: [], faces: 0, matches: 0 });
      stored.splice(stored.indexOf(img), 1);
      byHash.delete(hash);
      for (const o of stored) o.matches.delete(hash);
      return json(res, 200, { hash, erased: true, names: [...img.names].sort(), faces: img.faces.length, matches: img.matches.size });
    }
    if (seg[2] === "matches" && method === "GET") {
      const t = tolerance(url, res);
      if (!t) return;
      if (!img) return json(res, 200, []);
      const out = [...img.matches]
        .filter(([, d]) => t.value === null || d <= t.value)
        .map(([h, d]) => ({ hash: h, distance: d, names: [...byHash.get(h).names].sort() }))
        .sort((a, b) => a.distance - b.distance || a.hash.localeCompare(b.hash));
      return json(res, 200, out);
    }
    if (seg[2] === "thumbnail" && method === "GET") {
      if (!img || !thumbnails) return problem(res, 404, `no thumbnail for ${hash}`);
      res.writeHead(200, { "content-type": img.type, "cache-control": "private, max-age=31536000, immutable" });
      return res.end(img.thumb);
    }
  }
  return problem(res, method === "GET" || method === "POST" ? 404 : 405, `no route ${path}`);
}

/** The page, as src/api/page.rs serves it (files read at each request: edit and reload). */
function page(req, res, file) {
  let body;
  try {
    if (!/^[a-z0-9._-]+$/.test(file) || file.startsWith(".")) throw new Error();
    body = readFileSync(join(PAGE_DIR, file));
  } catch {
    return problem(res, 404, `no asset ${file}`);
  }
  const etag = `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`;
  const headers = {
    "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-cache", etag,
    "content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
  };
  if (req.headers["if-none-match"] === etag) {
    res.writeHead(304, headers);
    return res.end();
  }
  res.writeHead(200, { ...headers, "content-length": body.length });
  res.end(req.method === "HEAD" ? undefined : body);
}

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname.startsWith("/api/v1/")) {
    api(req, res, url).catch((e) => problem(res, 400, String(e)));
  } else if (url.pathname === "/" && ["GET", "HEAD"].includes(req.method)) {
    page(req, res, "index.html");
  } else if (url.pathname.startsWith("/assets/") && ["GET", "HEAD"].includes(req.method)) {
    page(req, res, url.pathname.slice("/assets/".length));
  } else if (url.pathname === "/healthz") {
    res.end("ok\n");
  } else {
    problem(res, 404, `no route ${url.pathname}`);
  }
});

const seed = arg("seed", "");
if (seed) {
  for (const f of readdirSync(seed).sort()) {
    const bytes = readFileSync(join(seed, f));
    if (sniff(bytes)) process_(createHash("sha256").update(bytes).digest("hex"), f, bytes);
  }
}

server.listen(Number(arg("port", "0")), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/`);
});
