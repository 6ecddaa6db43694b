// Refreshes the tiles and alerts from the monitor's own JSON API every two seconds.
"use strict";

const REFRESH_MS = 2000;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  if (text) node.textContent = text;
  return node;
}

function tile(service) {
  const card = el("article", { class: `tile ${service.status}`, "data-service": service.name });
  card.append(el("h3", {}, service.name));
  card.append(el("div", { class: "state" }, service.status));
  const latency = service.latency_ms == null ? "–" : `${service.latency_ms} ms`;
  const uptime = service.uptime_percent == null ? "–" : `${service.uptime_percent}%`;
  card.append(el("div", { class: "muted" }, `latency ${latency} · uptime ${uptime}`));
  if (service.error) card.append(el("div", { class: "muted" }, service.error));
  return card;
}

async function refresh() {
  try {
    const [health, alerts] = await Promise.all([
      fetch("/health").then((r) => r.json()),
      fetch("/alerts").then((r) => r.json()),
    ]);
    document.getElementById("tiles").replaceChildren(...health.data.services.map(tile));
    const overall = document.getElementById("overall");
    overall.textContent = health.data.status;
    overall.className = `badge ${health.data.status}`;
    const list = document.getElementById("alerts");
    list.replaceChildren(
      ...(alerts.data.length
        ? alerts.data.map((a) => el("li", { class: a.severity }, `${a.name}: ${a.summary}`))
        : [el("li", { class: "muted" }, "none")]),
    );
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    document.getElementById("updated").textContent = `monitor unreachable: ${err}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
