// Minimal SVG line charts for the dashboard: no library, no network.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PAD = { left: 46, right: 10, top: 10, bottom: 22 };

function svgEl(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG_NS, tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  if (text) node.textContent = text;
  return node;
}

// A "nice" upper bound (1, 2, 2.5 or 5 times a power of ten) so grid lines land on round values.
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= value);
  return step * power;
}

function timeLabel(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// Draws lines into an <svg>. series: [{name, color, values}] aligned with times (epoch s);
// null values leave gaps. opts.max fixes the top of the y range (e.g. 100 for a percentage).
function drawLineChart(svg, times, series, opts = {}) {
  const width = svg.clientWidth || 400;
  const height = svg.clientHeight || 180;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const seen = series.flatMap((s) => s.values.filter((v) => v != null));
  const max = opts.max ?? niceMax(Math.max(0, ...seen));
  // As many decimals as the grid step needs: 0.25 shows as 0.25, 250 as 250.
  const step = max / 4;
  let decimals = 0;
  while (decimals < 3 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-9) decimals += 1;
  const format = (v) => v.toFixed(decimals);
  const t0 = times.length ? times[0] : 0;
  const t1 = times.length ? times[times.length - 1] : 1;
  const x = (t) => PAD.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * plotW : plotW);
  const y = (v) => PAD.top + plotH - (Math.min(v, max) / max) * plotH;

  for (let i = 0; i <= 4; i += 1) {
    const value = (max * i) / 4;
    svg.append(svgEl("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(value), y2: y(value) }));
    svg.append(svgEl("text", { class: "axis", x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, format(value)));
  }
  if (times.length) {
    svg.append(svgEl("text", { class: "axis", x: PAD.left, y: height - 6 }, timeLabel(t0)));
    svg.append(svgEl("text", { class: "axis", x: width - PAD.right, y: height - 6, "text-anchor": "end" }, timeLabel(t1)));
  }
  if (!seen.length) {
    svg.append(svgEl("text", { class: "empty", x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, "text-anchor": "middle" }, "no data yet"));
    return;
  }
  for (const s of series) {
    let d = "";
    let pen = false;
    let last = null;
    s.values.forEach((v, i) => {
      if (v == null) {
        pen = false;
        return;
      }
      last = [x(times[i]), y(v)];
      d += `${pen ? "L" : "M"}${last[0].toFixed(1)},${last[1].toFixed(1)}`;
      pen = true;
    });
    if (!d) continue;
    const path = svgEl("path", { d, class: "line", stroke: s.color, "data-series": s.name });
    path.append(svgEl("title", {}, s.name));
    svg.append(path);
    // The newest value gets a dot, so a series with a single point still shows.
    svg.append(svgEl("circle", { cx: last[0], cy: last[1], r: 2.5, fill: s.color }));
  }
}

window.drawLineChart = drawLineChart;
