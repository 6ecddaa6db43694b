// Refreshes tiles, charts, the balancer split and alerts from the monitor's JSON API.
"use strict";

const REFRESH_MS = 2000;
const PALETTE = ["#0969da", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#1b7c83", "#953800", "#6e7781"];
const points = { t: [], services: {}, cache_hit_ratio: [], window: 900 };
const colors = {};

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== "") node.textContent = text;
  return node;
}

function colorOf(name) {
  if (!(name in colors)) colors[name] = PALETTE[Object.keys(colors).length % PALETTE.length];
  return colors[name];
}

const fmt = {
  ms: (v) => (v == null ? "–" : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`),
  rate: (v) => (v == null ? "–" : `${v < 10 ? v.toFixed(2) : Math.round(v)}/s`),
  pct: (v) => (v == null ? "–" : `${(v * 100).toFixed(v >= 0.999 || v === 0 ? 0 : 1)}%`),
  ago: (epoch) => {
    const s = Math.max(0, Date.now() / 1000 - epoch);
    return s < 90 ? `${Math.round(s)}s ago` : s < 5400 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
  },
};

async function getData(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()).data;
}

function instanceList(service, traffic) {
  const seen = Object.fromEntries((traffic?.instances ?? []).map((i) => [i.instance, i]));
  const list = el("ul", { class: "instances" });
  service.instances.forEach((i) => {
    const item = el("li", { class: i.status, "data-instance": i.instance, title: i.error ?? i.status });
    item.append(el("span", { class: "dot" }), el("span", { class: "where" }, i.instance));
    item.append(el("span", { class: "muted" }, `${fmt.ms(i.latency_ms)} · ${fmt.rate(seen[i.instance]?.request_rate)}`));
    list.append(item);
  });
  return list;
}

function tile(service, traffic) {
  const card = el("article", { class: `tile ${service.status}`, "data-service": service.name });
  card.style.setProperty("--accent", colorOf(service.name));
  card.append(el("h3", {}, service.name));
  const instances = service.instances ?? [];
  const up = instances.filter((i) => i.status === "up").length;
  const count = instances.length > 1 ? ` ${up}/${instances.length}` : "";
  card.append(el("div", { class: "state" }, `${service.status}${count}`));
  const rows = [
    ["probe", fmt.ms(service.latency_ms)],
    ["uptime", service.uptime_percent == null ? "–" : `${service.uptime_percent}%`],
    ["req/s", fmt.rate(traffic?.request_rate)],
    ["p95", fmt.ms(traffic?.p95_ms)],
    ["5xx", fmt.pct(traffic?.error_ratio)],
  ];
  const list = el("dl");
  rows.forEach(([k, v]) => list.append(el("dt", {}, k), el("dd", {}, v)));
  card.append(list);
  // One row per instance only when there is more than one (pods behind a headless Service).
  if (instances.length > 1) card.append(instanceList(service, traffic));
  const troubled = service.status === "down" || service.status === "degraded";
  const since = troubled ? `${service.status} ${fmt.ago(service.since)}: ${service.error}` : "";
  card.append(el("div", { class: "muted detail" }, since));
  return card;
}

function renderTiles(health, stats) {
  const traffic = Object.fromEntries(stats.services.map((s) => [s.name, s]));
  document.getElementById("tiles").replaceChildren(...health.services.map((s) => tile(s, traffic[s.name])));
  const overall = document.getElementById("overall");
  overall.textContent = health.status === "ok" ? "all services up" : "degraded";
  overall.className = `badge ${health.status}`;
}

// "server" or, for a service with several instances, "server @ 10.0.0.5:8002".
function whoOf(labels, multi) {
  const service = labels.service ?? "";
  const where = labels.instance && multi.has(service) ? ` @ ${labels.instance}` : "";
  const backend = labels.backend ? ` → ${labels.backend}` : "";
  return `${service}${where}${backend}`;
}

function renderAlerts(alerts, events, health) {
  const multi = new Set(health.services.filter((s) => (s.instances ?? []).length > 1).map((s) => s.name));
  const body = document.getElementById("alerts");
  body.replaceChildren(
    ...alerts.map((a) => {
      const row = el("tr", {
        class: `alert ${a.state} ${a.severity}`,
        "data-alert": a.name,
        "data-service": a.service ?? "",
        "data-instance": a.labels.instance ?? "",
      });
      const state = el("td");
      state.append(el("span", { class: `pill ${a.state}` }, a.state));
      row.append(
        state,
        el("td", {}, a.name),
        el("td", {}, whoOf(a.labels, multi)),
        el("td", {}, a.summary),
        el("td", { class: "muted" }, fmt.ago(a.since)),
      );
      return row;
    }),
  );
  document.getElementById("no-alerts").classList.toggle("hidden", alerts.length > 0);
  const firing = alerts.filter((a) => a.state === "firing").length;
  const badge = document.getElementById("firing");
  badge.textContent = `${firing} firing`;
  badge.className = firing ? "badge degraded" : "badge hidden";
  document.getElementById("history").replaceChildren(
    ...(events.length
      ? events.map((e) => {
          const who = whoOf(e.labels, multi);
          const item = el("li", { class: e.to });
          item.append(el("span", { class: "muted" }, new Date(e.at * 1000).toLocaleTimeString()), " ");
          item.append(el("span", { class: `pill ${e.to}` }, e.to), ` ${e.name} ${who}: ${e.summary}`);
          return item;
        })
      : [el("li", { class: "muted" }, "No alert has changed state yet.")]),
  );
}

function renderSplit(balancer) {
  const backends = balancer.backends;
  document.getElementById("split-source").textContent = balancer.source ? `(from ${balancer.target} /${balancer.source})` : "(no data yet)";
  const bar = document.getElementById("split-bar");
  bar.replaceChildren(
    ...backends
      .filter((b) => b.share)
      .map((b) => {
        const part = el("div", { class: "part", title: `${b.name ?? b.backend}: ${fmt.pct(b.share)}` }, `${b.name ?? b.backend} ${fmt.pct(b.share)}`);
        part.style.flexGrow = String(b.share);
        part.style.background = colorOf(b.name ?? b.backend);
        return part;
      }),
  );
  if (!bar.children.length) bar.append(el("div", { class: "part idle" }, "no traffic in the window"));
  document.getElementById("split").replaceChildren(
    ...backends.map((b) => {
      const row = el("tr", { "data-backend": b.backend });
      row.append(
        el("td", {}, b.name ? `${b.name} (${b.backend})` : b.backend),
        el("td", { class: `state ${b.state ?? "unknown"}` }, b.state ?? "n/a"),
        el("td", {}, fmt.rate(b.request_rate)),
        el("td", {}, fmt.pct(b.share)),
        el("td", {}, b.requests_total == null ? "–" : String(b.requests_total)),
      );
      return row;
    }),
  );
}

function mergeHistory(chunk) {
  points.window = chunk.window_seconds;
  const before = points.t.length;
  points.t.push(...chunk.t);
  for (const [name, columns] of Object.entries(chunk.services)) {
    if (!points.services[name]) {
      points.services[name] = Object.fromEntries(Object.keys(columns).map((k) => [k, new Array(before).fill(null)]));
    }
  }
  for (const [name, columns] of Object.entries(points.services)) {
    for (const [key, values] of Object.entries(columns)) {
      values.push(...(chunk.services[name]?.[key] ?? new Array(chunk.t.length).fill(null)));
    }
  }
  points.cache_hit_ratio.push(...chunk.cache_hit_ratio);
  const cutoff = (points.t[points.t.length - 1] ?? 0) - points.window;
  const drop = points.t.findIndex((t) => t >= cutoff);
  if (drop > 0) {
    points.t.splice(0, drop);
    points.cache_hit_ratio.splice(0, drop);
    Object.values(points.services).forEach((cols) => Object.values(cols).forEach((v) => v.splice(0, drop)));
  }
}

function perService(key, scale = 1) {
  return Object.entries(points.services).map(([name, cols]) => ({
    name,
    color: colorOf(name),
    values: cols[key].map((v) => (v == null ? null : v * scale)),
  }));
}

function renderCharts(cache) {
  const t = points.t;
  drawLineChart(document.getElementById("chart-rate"), t, perService("request_rate"));
  drawLineChart(document.getElementById("chart-latency"), t, perService("p95_ms"));
  drawLineChart(document.getElementById("chart-errors"), t, perService("error_ratio", 100));
  const hit = points.cache_hit_ratio.map((v) => (v == null ? null : v * 100));
  const cacheLine = { name: cache.target, color: colorOf(cache.target), values: hit };
  drawLineChart(document.getElementById("chart-cache"), t, [cacheLine], { max: 100 });
  document.getElementById("cache-now").textContent =
    cache.hit_ratio == null ? "" : `now ${fmt.pct(cache.hit_ratio)} of ${fmt.rate(cache.lookup_rate)} lookups, from ${cache.sources.join(", ")}`;
  document.getElementById("legend").replaceChildren(
    ...Object.keys(points.services).map((name) => {
      const item = el("span", { class: "key" }, name);
      item.style.setProperty("--accent", colorOf(name));
      return item;
    }),
  );
}

async function refresh() {
  try {
    const since = points.t.length ? `?since=${points.t[points.t.length - 1]}` : "";
    const [health, stats, alerts, events, chunk] = await Promise.all([
      getData("/health"),
      getData("/stats"),
      getData("/alerts"),
      getData("/alerts/history?limit=15"),
      getData(`/stats/history${since}`),
    ]);
    health.services.forEach((s) => colorOf(s.name));
    mergeHistory(chunk);
    renderTiles(health, stats);
    renderAlerts(alerts, events, health);
    renderSplit(stats.balancer);
    renderCharts(stats.cache);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.classList.remove("stale");
  } catch (err) {
    document.getElementById("updated").textContent = `monitor unreachable: ${err.message}`;
    document.body.classList.add("stale");
  }
}

// Chained rather than setInterval, so a slow monitor never has requests pile up.
async function loop() {
  await refresh();
  setTimeout(loop, REFRESH_MS);
}

loop();
