// Overview (dashboard.md §3.1): totals for the range, cost per day stacked by a chosen
// dimension, top models and clients. Every figure comes aggregated from the admin API
// (/admin/usage/summary, /admin/usage/series).

import uPlot from './vendor/uplot-1.6.32/uPlot.esm.js';
import { api, query } from './api.js';
import { el, figure, fillTable, fmtInt, fmtPct, fmtUsd } from './format.js';
import * as R from './range.js';

const $ = (id) => document.getElementById(id);
const COLORS = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6', '--c7', '--c8', '--c9'];
const MAX_SERIES = 8;
let range = null;
let plot = null;
let onError = () => {};
let resizeTimer = null;

export function init(showError) {
  onError = showError;
  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => select(R.preset(b.dataset.range)));
  }
  $('custom-range').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const from = $('range-from').value;
    const to = $('range-to').value;
    if (from && to && from <= to) select({ name: 'custom', from, to });
  });
  $('chart-by').addEventListener('change', () => chart().catch(onError));
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (plot) plot.setSize(size()); }, 150);
  });
}

export async function enter() {
  range = R.fromUrl();
  await load();
}

function select(r) {
  range = r;
  R.toUrl(r);
  load().catch(onError);
}

async function load() {
  const section = $('view-overview');
  section.dataset.ready = '0';
  for (const b of document.querySelectorAll('[data-range]')) {
    b.setAttribute('aria-pressed', String(b.dataset.range === range.name));
  }
  $('range-from').value = range.from;
  $('range-to').value = range.to;
  $('range-label').textContent = range.from === range.to ? range.from : `${range.from} to ${range.to}`;
  const q = { from: range.from, to: range.to };
  const [summary, models, clients] = await Promise.all([
    api(`/admin/usage/summary${query(q)}`),
    api(`/admin/usage/series${query({ ...q, by: 'model' })}`),
    api(`/admin/usage/series${query({ ...q, by: 'client' })}`),
  ]);
  cards(summary);
  top($('top-models'), 'Model', models.keys);
  top($('top-clients'), 'Client', clients.keys);
  await chart();
  section.dataset.ready = '1';
}

function card(label, metric, value, text, sub) {
  return el('div', { class: 'card' }, el('span', { class: 'label', text: label }),
    figure(metric, value, text), sub ? el('span', { class: 'sub', text: sub }) : null);
}

function cards(s) {
  $('cards').replaceChildren(
    card('Cost', 'cost-total', s.cost_nanousd, fmtUsd(s.cost_nanousd)),
    card('Requests', 'requests-total', s.requests, fmtInt(s.requests)),
    card('Input tokens', 'tokens-input', s.prompt_tokens, fmtInt(s.prompt_tokens)),
    card('Output tokens', 'tokens-output', s.completion_tokens, fmtInt(s.completion_tokens)),
    card('Cache read', 'tokens-cache-read', s.cache_read_tokens, fmtInt(s.cache_read_tokens)),
    card('Cache write', 'tokens-cache-write', s.cache_creation_tokens, fmtInt(s.cache_creation_tokens)),
    card('Cache hit ratio', 'cache-hit-ratio', s.cache_hit_ratio, fmtPct(s.cache_hit_ratio)),
    card('Error rate', 'error-rate', s.error_rate, fmtPct(s.error_rate), `${fmtInt(s.errors)} not 2xx`),
  );
}

function top(table, label, keys) {
  fillTable(table, [
    { label }, { label: 'Requests', num: true }, { label: 'Tokens', num: true }, { label: 'Cost', num: true },
  ], keys.slice(0, 10).map((k) => [k.key, [
    { text: k.key || '(none)' },
    { text: fmtInt(k.request_count), value: k.request_count },
    { text: fmtInt(k.total_tokens), value: k.total_tokens },
    { text: fmtUsd(k.cost_nanousd), value: k.cost_nanousd },
  ]]));
}

function size() {
  const box = $('chart');
  const width = Math.max(280, box.clientWidth);
  return { width, height: width < 500 ? 240 : 300 };
}

async function chart() {
  const by = $('chart-by').value;
  const series = await api(`/admin/usage/series${query({ from: range.from, to: range.to, by })}`);
  const days = R.days(range);
  const index = new Map(days.map((d, i) => [d, i]));
  // The largest keys get their own band; the rest share one, so the legend stays readable.
  const shown = series.keys.slice(0, MAX_SERIES);
  const rest = series.keys.slice(MAX_SERIES);
  const bands = shown.map((k) => ({ label: k.key || '(none)', points: k.days }));
  if (rest.length) bands.push({ label: `${rest.length} others`, points: rest.flatMap((k) => k.days) });
  const raw = bands.map((b) => {
    const v = new Array(days.length).fill(0);
    for (const p of b.points) if (index.has(p.day)) v[index.get(p.day)] += p.cost_nanousd / 1e9;
    return v;
  });
  // Stacked bars: band i is drawn at the sum of bands 0..i, the tallest drawn first.
  // A day without cost draws nothing (null), not a flat bar.
  const stacked = raw.map((_, i) => days.map((__, d) => {
    const v = raw.slice(0, i + 1).reduce((a, r) => a + r[d], 0);
    return v > 0 ? v : null;
  }));
  const css = getComputedStyle(document.documentElement);
  const color = (i) => css.getPropertyValue(COLORS[i % COLORS.length]).trim();
  const fg = css.getPropertyValue('--fg').trim();
  const line = css.getPropertyValue('--line').trim();
  const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const order = bands.map((_, i) => i).reverse();
  const opts = {
    ...size(),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    scales: {
      // Half a day of room each side, so the first and last bars are whole.
      x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      { stroke: fg, grid: { show: false }, ticks: { stroke: line }, space: 36,
        incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400],
        values: (u, vals) => vals.map((v) => R.utcDay(v * 1000).slice(5)) },
      { stroke: fg, grid: { stroke: line }, ticks: { stroke: line }, size: 70,
        values: (u, vals) => {
          const step = vals.length > 1 ? Math.abs(vals[1] - vals[0]) : 1;
          const digits = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step || 1))));
          return vals.map((v) => `$${v.toFixed(digits)}`);
        } },
    ],
    legend: { live: true },
    series: [{ label: 'Day (UTC)', value: (u, v) => (v == null ? '' : R.utcDay(v * 1000)) }, ...order.map((i) => ({
      label: bands[i].label,
      fill: color(i),
      stroke: color(i),
      paths: uPlot.paths.bars({ size: [0.7, 60] }),
      points: { show: false },
      value: (u, v, si, di) => (di == null ? '' : fmtUsd(Math.round(raw[i][di] * 1e9))),
    }))],
  };
  const data = [xs, ...order.map((i) => stacked[i])];
  if (plot) plot.destroy();
  $('chart').replaceChildren();
  plot = new uPlot(opts, data, $('chart'));
  $('chart').dataset.by = by;
  $('chart').dataset.series = String(bands.length);
}
