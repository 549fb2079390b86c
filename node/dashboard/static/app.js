// rtspmesh dashboard: reads the admin API and redraws every few seconds.
// No framework, no build step. Text from the API is only ever set with
// textContent (never as HTML).
"use strict";

const params = new URLSearchParams(location.search);
const every = Math.max(0.5, Number(params.get("refresh")) || 2);
document.getElementById("every").textContent = String(every);

const state = {
  token: sessionStorage.getItem("rtspmesh-token") || "",
  confirmEvict: "", // id whose evict button asks for confirmation
  confirmUntil: 0,
  busy: new Set(),  // ids with a request in flight
  message: "",
};

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (res.status === 401) {
    document.getElementById("auth").hidden = false;
    throw new Error("this node needs its admin token");
  }
  if (!res.ok) throw new Error((data && data.error) || (method + " " + path + ": HTTP " + res.status));
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function seconds(s) {
  if (!s) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? h + "h" : "") + (h || m ? String(m).padStart(h ? 2 : 1, "0") + "m" : "") + String(r).padStart(h || m ? 2 : 1, "0") + "s";
}

function short(id) { return id && id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : (id || ""); }

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "status bad" : "status";
}

async function act(id, method, path, body, done) {
  state.busy.add(id);
  try {
    await api(method, path, body);
    state.message = done;
  } catch (e) {
    state.message = e.message;
    setStatus(e.message, true);
  } finally {
    state.busy.delete(id);
    refresh();
  }
}

function streamRow(s) {
  const busy = state.busy.has(s.id);
  const confirming = state.confirmEvict === s.id && Date.now() < state.confirmUntil;
  const evict = el("button", {
    class: confirming ? "confirm" : "danger", "data-action": "evict", disabled: busy || s.filling,
    title: s.filling ? "filling: can be evicted once the fill ends" : "remove it from this node's store",
    onclick: () => {
      if (state.confirmEvict === s.id && Date.now() < state.confirmUntil) {
        state.confirmEvict = "";
        act(s.id, "DELETE", "/api/v1/streams/" + s.id, undefined, "evicted " + s.path);
      } else {
        state.confirmEvict = s.id;
        state.confirmUntil = Date.now() + 10000;
        render();
      }
    },
  }, confirming ? "Confirm evict" : "Evict");
  const pin = el("button", {
    "data-action": s.pinned ? "unpin" : "pin", disabled: busy,
    title: s.pinned ? "let the quota evict it again" : "never evict it for the quota",
    onclick: () => act(s.id, s.pinned ? "DELETE" : "POST", "/api/v1/streams/" + s.id + "/pin", undefined,
      (s.pinned ? "unpinned " : "pinned ") + s.path),
  }, s.pinned ? "Unpin" : "Pin");
  const prefetch = el("button", {
    "data-action": "prefetch", disabled: busy || !s.path || s.state === "complete" || s.live,
    title: "fill it completely now, without a player",
    onclick: () => act(s.id, "POST", "/api/v1/prefetch", { path: s.path }, "prefetching " + s.path),
  }, "Prefetch");
  const url = el("input", { class: "url mono", readonly: true, value: s.rtsp_url || "", "aria-label": "RTSP URL",
    onfocus: (e) => e.target.select() });
  const source = origin(s.source_kind, s.source, s.via);
  return el("tr", { "data-id": s.id, "data-path": s.path, "data-state": s.state },
    el("td", {}, el("div", {}, s.path || s.key), el("div", { class: "small mono", title: s.key }, short(s.id)), s.pinned ? el("span", { class: "small" }, "pinned") : ""),
    el("td", {}, el("span", { class: "state " + s.state }, s.state), freshness(s.freshness), fillProgress(s.fill)),
    el("td", {}, source, filler(s)),
    el("td", {}, seconds(s.duration_seconds)),
    el("td", {}, bytes(s.bytes), el("div", { class: "small" }, s.segments + (s.segments === 1 ? " segment" : " segments"))),
    el("td", {}, String(s.hits)),
    el("td", {}, String(s.players)),
    el("td", {}, url),
    el("td", {}, pin, evict, prefetch));
}

// fillProgress shows a fill in progress: media time done of the total,
// bytes, rate, speed (8x: eight times real time) and ETA, as prefetch does.
function fillProgress(f) {
  if (!f) return "";
  const media = seconds(f.media_done_seconds) + (f.media_total_seconds ? " of " + seconds(f.media_total_seconds) : "");
  const rate = f.rate_bps >= 1e6 ? (f.rate_bps / 1e6).toFixed(1) + " Mbit/s" : Math.round(f.rate_bps / 1e3) + " kbit/s";
  let text = media + " · " + bytes(f.bytes) + " · " + rate + " · " + f.speed.toFixed(1) + "x";
  if (f.eta_seconds) text += " · ETA " + seconds(f.eta_seconds);
  const title = f.rate_limit_bps ? "the origin's rate_limit: " + (f.rate_limit_bps / 1e6).toFixed(1) + " Mbit/s" : "";
  return el("div", { class: "small fill-progress", "data-fill": "1", title: title }, text);
}

// freshness says whether a stored recording is fresh by its origin's policy
// (fresh until a time, stale: revalidated at the next play, revalidating),
// with its validators in the tooltip.
function freshness(f) {
  if (!f || f.state === "live") return "";
  const text = f.state === "fresh" ? "fresh until " + new Date(f.fresh_until).toLocaleTimeString() : f.state;
  const title = ["fetched " + (f.fetched_at || "?"), f.last_modified ? "Last-Modified: " + f.last_modified : "",
    f.cache_control ? "Cache-Control: " + f.cache_control : "", f.expires ? "Expires: " + f.expires : ""]
    .filter(Boolean).join("\n");
  return el("div", { class: "small freshness", "data-freshness": f.state, title: title }, text);
}

// origin says where a recording came from: "origin", or the peer it was
// filled from (for a live relay, the chain of peers from the origin-facing
// one); a peer the page knows by name is shown as "this node".
function origin(kind, source, via) {
  if (kind === "origin") return el("span", { class: "from", "data-from": "origin" }, "origin");
  if (kind !== "peer") return el("span", { class: "from small", "data-from": "" }, "between sources");
  const name = (id) => (last.node && id === last.node.peer_id) ? "this node" : "peer " + short(id);
  const chain = (via && via.length > 1) ? el("div", { class: "via", title: via.join(" → ") },
    "via " + via.map((id) => name(id)).join(" → ")) : "";
  return el("span", { class: "from", "data-from": source, title: source }, name(source), chain);
}

// filler says which node opens the stream's origin session for the whole
// mesh (its designated filler), and why.
function filler(s) {
  if (!s.filler) return "";
  const who = (last.node && s.filler === last.node.peer_id) ? "this node" : "peer " + short(s.filler);
  return el("div", { class: "via", "data-filler": s.filler, title: s.filler_why || "" },
    "filler: " + who + (s.filler_why ? " (" + s.filler_why + ")" : ""));
}

function holdItem(h) {
  return el("li", { "data-key": h.key, "data-state": h.state },
    el("span", { class: "path", title: h.key }, h.path || h.key),
    el("span", { class: "state " + h.state }, h.state), " ",
    el("span", { class: "small" }, bytes(h.bytes) + (h.duration_seconds ? ", " + seconds(h.duration_seconds) : "") + " · from "),
    origin(h.source_kind, h.source));
}

function peerRow(p) {
  let holds;
  if (p.holds === null || p.holds === undefined) {
    holds = el("span", { class: "small", title: p.catalogue_error || "" }, "not known (" + (p.catalogue_error || "no answer") + ")");
  } else if (p.holds.length === 0) {
    holds = el("span", { class: "small" }, "nothing");
  } else {
    holds = el("ul", { class: "holds" }, ...p.holds.map(holdItem),
      p.holds_truncated ? el("li", { class: "small" }, "and more") : "");
  }
  return el("tr", { "data-peer": p.id },
    el("td", { class: "mono", title: p.id }, short(p.id)),
    el("td", {}, p.rtt_seconds ? (p.rtt_seconds * 1000).toFixed(1) + " ms" : "–"),
    el("td", {}, holds),
    el("td", { class: "mono small" }, (p.addrs || []).join(" ")));
}

let last = { node: null, streams: [], peers: [] };

// A redraw replaces the tables' rows. One between a button's press and its
// release would take the button away under the pointer and lose the click,
// so redraws wait while a pointer is pressed and run just after the release
// (after its click has been handled). Only the primary button holds them:
// another's release may never reach the page (a context menu takes it).
const hold = { pressed: false, pending: false };
function released() {
  hold.pressed = false;
  if (hold.pending) { hold.pending = false; setTimeout(render, 0); }
}
document.addEventListener("pointerdown", (e) => { if (e.button === 0) hold.pressed = true; }, true);
document.addEventListener("pointerup", released, true);
document.addEventListener("pointercancel", released, true);
document.addEventListener("contextmenu", released, true);
// The window losing focus: a listener that does not capture hears only the
// window's own blur (an element's does not bubble).
window.addEventListener("blur", released);

function render() {
  if (hold.pressed) { hold.pending = true; return; }
  const { node, streams, peers } = last;
  if (node) {
    document.getElementById("node-id").textContent = node.peer_id ? "peer " + node.peer_id : "mesh disabled";
    document.getElementById("version").textContent = "rtspmesh " + node.version + " · up " + seconds(node.uptime_seconds);
    const lookups = node.hits + node.misses;
    document.getElementById("hit-ratio").textContent = lookups ? Math.round(100 * node.hits / lookups) + "%" : "–";
    const req = node.requests || {};
    document.getElementById("hit-detail").textContent = node.hits + " hits, " + node.misses + " misses" +
      (node.misses ? " (" + (req.peer || 0) + " filled from a peer, " + (req.origin || 0) + " from an origin)" : "");
    document.getElementById("saved").textContent = bytes(node.wan_saved_bytes);
    document.getElementById("saved-detail").textContent = "of " + bytes(node.player_sent_bytes) +
      " sent to players came from no origin. Fills: " + bytes(node.fill_bytes_origin) + " from origins, " +
      bytes(node.fill_bytes_peer) + " from peers.";
    document.getElementById("store").textContent = bytes(node.store_bytes);
    const pct = node.store_quota_bytes ? Math.min(100, 100 * node.store_bytes / node.store_quota_bytes) : 0;
    document.getElementById("store-bar").style.width = pct + "%";
    const sp = node.storage || {};
    let storing = "";
    if (sp.read_only) storing = " · READ-ONLY: disk full, serving what it has";
    else if (sp.quota_full) storing = " · NOT STORING: quota full of unevictable recordings";
    else if (sp.storing === false) storing = " · NOT STORING: less than " + bytes(sp.min_free_bytes) + " free";
    const detail = document.getElementById("store-detail");
    detail.textContent = node.recordings + " recordings; quota " +
      (node.store_quota_bytes ? bytes(node.store_quota_bytes) : "none") +
      (sp.free_bytes >= 0 ? "; " + bytes(sp.free_bytes) + " free" : "") + storing;
    detail.classList.toggle("warn", storing !== "");
    document.getElementById("now").textContent = node.players + " players";
    const nowDetail = document.getElementById("now-detail");
    nowDetail.textContent = node.fills + " fills running, " + node.peers + " peers, RTSP " + node.rtsp_addr +
      (node.open_mesh ? " · OPEN MESH: anyone who reaches mesh.listen may join and copy (mesh.open)" : "");
    nowDetail.classList.toggle("warn", !!node.open_mesh);
  }
  const tb = document.querySelector("#streams tbody");
  tb.replaceChildren(...streams.map(streamRow));
  document.getElementById("no-streams").hidden = streams.length > 0;
  const pb = document.querySelector("#peers tbody");
  pb.replaceChildren(...peers.map(peerRow));
  document.getElementById("no-peers").hidden = peers.length > 0;
}

let timer = 0;
async function refresh() {
  clearTimeout(timer);
  try {
    const [node, streams, peers] = await Promise.all([
      api("GET", "/api/v1/node"), api("GET", "/api/v1/streams"), api("GET", "/api/v1/peers")]);
    last = { node, streams, peers };
    document.getElementById("auth").hidden = true;
    render();
    setStatus((state.message ? state.message + " · " : "") + "updated " + new Date().toLocaleTimeString(), false);
  } catch (e) {
    setStatus(e.message === "Failed to fetch" ? "node not reachable" : e.message, true);
  }
  timer = setTimeout(refresh, every * 1000);
}

document.getElementById("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = document.getElementById("token").value;
  sessionStorage.setItem("rtspmesh-token", state.token);
  refresh();
});

document.getElementById("prefetch-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const path = document.getElementById("prefetch-path").value.trim().replace(/^\/+/, "");
  if (path) act("prefetch:" + path, "POST", "/api/v1/prefetch", { path }, "prefetching " + path);
});

refresh();
