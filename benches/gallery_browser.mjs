// The gallery page under load, in headless Chromium: first load (time to the first 20 cards,
// bytes transferred with and without thumbnails), then 5 scrolls to the bottom (time to each
// page of cards appended), long tasks and animation-frame gaps, DOM size, then a second
// visit in the same profile (what the cache saves). Run by
// benches/gallery_bench.py against a `facerec serve` holding 10,000 images; not run in CI.
//
//   node benches/gallery_browser.mjs http://127.0.0.1:5000 [pages]
//
// Needs /usr/bin/chromium (CHROMIUM to change it) and playwright-core: tests/browser's
// node_modules (`npm ci` there) or PLAYWRIGHT_CORE=<path to the playwright-core folder>.
// Prints one JSON document on stdout; progress on stderr.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { chromium } = require(
  process.env.PLAYWRIGHT_CORE || join(here, "..", "tests", "browser", "node_modules", "playwright-core"),
);

const BASE = (process.argv[2] || "http://127.0.0.1:5000").replace(/\/$/, "");
const PAGES = Number(process.argv[3] || 5);
const VIEWPORT = { width: 1280, height: 900 };
const log = (msg) => process.stderr.write(`[browser] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// In the page before its own scripts: card counts over time, long tasks, frame gaps.
function probe() {
  const b = (window.__bench = { counts: [], frames: [], longtasks: [], maxGap: 0, gapsOver100: 0 });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longtasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: "longtask", buffered: true });
  } catch {
    b.noLongtask = true;
  }
  let last = 0;
  const frame = (t) => {
    if (last && document.visibilityState === "visible") {
      const gap = t - last;
      if (gap > b.maxGap) b.maxGap = gap;
      if (gap > 100) b.gapsOver100++;
    }
    last = t;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  let seen = 0;
  new MutationObserver(() => {
    const n = document.getElementById("grid")?.children.length || 0;
    if (n === seen) return;
    seen = n;
    const at = performance.now();
    b.counts.push({ n, at });
    requestAnimationFrame(() => b.frames.push({ n, at: performance.now() }));
  }).observe(document, { childList: true, subtree: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ viewport: VIEWPORT });
  await context.addInitScript(probe);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: false });
  await cdp.send("Performance.enable");

  // Every response: its URL and the bytes on the wire (headers + encoded body).
  const requests = new Map(); // requestId -> {url, bytes, done, at}
  let lastActivity = Date.now();
  cdp.on("Network.requestWillBeSent", (e) => {
    requests.set(e.requestId, { url: e.request.url, bytes: 0, done: false });
    lastActivity = Date.now();
  });
  cdp.on("Network.loadingFinished", (e) => {
    const r = requests.get(e.requestId);
    if (r) Object.assign(r, { bytes: e.encodedDataLength, done: true });
    lastActivity = Date.now();
  });
  cdp.on("Network.loadingFailed", (e) => {
    const r = requests.get(e.requestId);
    if (r) r.done = true;
  });
  const isThumb = (url) => /\/thumbnail(\?|$)/.test(url);
  const isStream = (url) => url.endsWith("/api/v1/events");
  const kind = (url) => {
    const path = new URL(url).pathname;
    if (isThumb(url)) return "thumbnails";
    if (path.startsWith("/api/")) return "API JSON";
    if (path === "/") return "HTML";
    return path.replace(/^.*\./, "").toUpperCase() + " (assets)";
  };
  // Quiet: no request started or finished for `ms` (the event stream stays open).
  const settled = async (ms, max = 20_000) => {
    const start = Date.now();
    while (Date.now() - start < max) {
      const pending = [...requests.values()].some((r) => !r.done && !isStream(r.url));
      if (!pending && Date.now() - lastActivity >= ms) return;
      await sleep(100);
    }
  };
  const cards = () => page.evaluate(() => document.getElementById("grid").children.length);

  log(`opening ${BASE}/`);
  await page.goto(`${BASE}/`, { waitUntil: "commit" });
  await page.waitForFunction(() => (document.getElementById("grid")?.children.length || 0) >= 20, null, {
    timeout: 60_000,
    polling: 50,
  });
  await settled(1500);
  const first = await page.evaluate(() => {
    const b = window.__bench;
    const c20 = b.counts.find((c) => c.n >= 20);
    const thumbs = performance
      .getEntriesByType("resource")
      .filter((e) => /\/thumbnail(\?|$)/.test(e.name))
      .map((e) => e.responseEnd)
      .sort((a, b) => a - b);
    return { cards20_ms: c20?.at, thumbs20_ms: thumbs[19] ?? thumbs.at(-1) ?? NaN, cards: document.getElementById("grid").children.length };
  });
  const snapshot = () => {
    const all = [...requests.values()].filter((r) => r.done);
    const sum = (xs) => xs.reduce((s, r) => s + r.bytes, 0);
    const byKind = {};
    for (const r of all) byKind[kind(r.url)] = (byKind[kind(r.url)] || 0) + r.bytes;
    const thumbs = all.filter((r) => isThumb(r.url));
    const rest = all.filter((r) => !isThumb(r.url));
    return {
      bytes_total: sum(all),
      bytes_thumbs: sum(thumbs),
      thumbs: thumbs.length,
      bytes_no_thumbs: sum(rest),
      requests_no_thumbs: rest.length,
      by_kind: byKind,
      paths: rest.map((r) => new URL(r.url).pathname + new URL(r.url).search).filter((u) => !u.startsWith("/api/v1/events")),
      offsite: [...requests.values()].filter((r) => !/^(https?:\/\/127\.0\.0\.1[:/]|data:|blob:)/.test(r.url)).map((r) => r.url),
    };
  };
  const firstLoad = { ...first, ...snapshot() };
  log(`first load: ${JSON.stringify(firstLoad)}`);

  const pages = [];
  for (let i = 0; i < PAGES; i++) {
    const before = await cards();
    const t = await page.evaluate(() => {
      const at = performance.now();
      window.scrollTo(0, document.documentElement.scrollHeight);
      return at;
    });
    try {
      await page.waitForFunction((n) => document.getElementById("grid").children.length > n, before, {
        timeout: 30_000,
        polling: 50,
      });
    } catch {
      pages.push({ cards: before, error: "no page appended within 30 s of scrolling to the bottom" });
      break;
    }
    await settled(800);
    const p = await page.evaluate(
      ({ before, t }) => {
        const b = window.__bench;
        const added = b.counts.find((c) => c.n > before && c.at >= t);
        const frame = b.frames.find((c) => c.n > before && c.at >= t);
        const api = performance
          .getEntriesByType("resource")
          .find((e) => e.name.includes("/api/v1/images?") && e.startTime >= t);
        return {
          cards: document.getElementById("grid").children.length,
          append_ms: added.at - t,
          frame_ms: frame ? frame.at - t : NaN,
          api_ms: api ? api.responseEnd - api.startTime : NaN,
        };
      },
      { before, t },
    );
    pages.push(p);
    log(`page ${i + 1}: ${JSON.stringify(p)}`);
  }

  const afterPages = snapshot();
  const end = await page.evaluate(() => {
    const b = window.__bench;
    return {
      dom_nodes: document.getElementsByTagName("*").length,
      cards: document.getElementById("grid").children.length,
      longtasks: b.longtasks,
      noLongtask: !!b.noLongtask,
      maxGap: b.maxGap,
      gapsOver100: b.gapsOver100,
    };
  });
  // A second visit in the same profile: the assets revalidate (ETag), thumbnails come from the cache.
  requests.clear();
  await page.goto(`${BASE}/`, { waitUntil: "commit" });
  await page.waitForFunction(() => (document.getElementById("grid")?.children.length || 0) >= 20, null, {
    timeout: 60_000,
    polling: 50,
  });
  await settled(1500);
  const again = {
    ...(await page.evaluate(() => ({ cards20_ms: window.__bench.counts.find((c) => c.n >= 20)?.at }))),
    ...snapshot(),
  };
  log(`second visit: ${JSON.stringify(again)}`);

  const metrics = Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
  const lt = end.longtasks;
  const out = {
    chromium: browser.version(),
    viewport: `${VIEWPORT.width}x${VIEWPORT.height}`,
    first_load: firstLoad,
    pages,
    dom_nodes: end.dom_nodes,
    cdp_nodes: metrics.Nodes,
    cards: end.cards,
    js_heap_mb: metrics.JSHeapUsedSize / 2 ** 20,
    main_thread: {
      longtasks: lt.length,
      longest_ms: lt.reduce((m, e) => Math.max(m, e.duration), 0),
      over200: lt.filter((e) => e.duration > 200).length,
      list: lt.map((e) => [Math.round(e.start), Math.round(e.duration)]),
      observer_missing: end.noLongtask,
      max_frame_gap_ms: end.maxGap,
      frame_gaps_over_100ms: end.gapsOver100,
    },
    total_after_pages: afterPages,
    second_visit: again,
    errors,
  };
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
} finally {
  await browser.close();
}
