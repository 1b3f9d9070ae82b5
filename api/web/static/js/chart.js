// Simple inline SVG line charts drawn by hand: one series over time, min/max on the y axis,
// first/last time on the x axis, gaps (null values) break the line.
import { h } from './dom.js';

const ns = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function shortTime(ms) {
  return new Date(ms).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * lineChart({title, unit, points: [{t: ms, v: number|null}], min?}) returns a figure with an
 * SVG chart, or an empty-state line when there is nothing to draw.
 */
export function lineChart({ title, unit = '', points, min }) {
  const values = points.filter((p) => p.v !== null && p.v !== undefined && !Number.isNaN(p.v));
  const caption = h('figcaption', {}, title);
  if (values.length < 2) return h('figure', { class: 'chart' }, caption, h('p', { class: 'empty' }, 'Not enough data yet.'));

  const W = 600, H = 180, left = 56, right = 10, top = 10, bottom = 26;
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  let lo = min ?? Math.min(...values.map((p) => p.v));
  let hi = Math.max(...values.map((p) => p.v));
  if (hi === lo) { hi += 1; lo = Math.max(min ?? -Infinity, lo - 1); }
  const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (W - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);

  let d = '';
  let pen = false;
  for (const p of points) {
    if (p.v === null || p.v === undefined || Number.isNaN(p.v)) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
    pen = true;
  }
  const fmt = (v) => `${Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1)}${unit ? ` ${unit}` : ''}`;
  const last = values[values.length - 1].v;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: latest ${fmt(last)}, range ${fmt(lo)} to ${fmt(hi)}`, class: 'chart-svg' },
    svg('line', { x1: left, y1: top, x2: left, y2: H - bottom, class: 'axis' }),
    svg('line', { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: 'axis' }),
    svg('line', { x1: left, y1: y(hi), x2: W - right, y2: y(hi), class: 'grid' }),
    svg('text', { x: left - 4, y: y(hi) + 4, class: 'tick', 'text-anchor': 'end' }, fmt(hi)),
    svg('text', { x: left - 4, y: y(lo), class: 'tick', 'text-anchor': 'end' }, fmt(lo)),
    svg('text', { x: left, y: H - 8, class: 'tick' }, shortTime(t0)),
    svg('text', { x: W - right, y: H - 8, class: 'tick', 'text-anchor': 'end' }, shortTime(t1)),
    svg('path', { d, class: 'line' }));
  return h('figure', { class: 'chart' }, caption, chart, h('p', { class: 'chart-latest' }, `latest ${fmt(last)}`));
}
