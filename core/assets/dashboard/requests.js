// Requests (dashboard.md §3.2): the newest rows of /admin/logs with filters, auto-refresh
// every 5 s while visible, a detail panel per row, and CSV / JSON export of the filtered rows.

import { api, query } from './api.js';
import { el, fillTable, fmtInt, fmtMs, fmtTime, fmtUsd } from './format.js';

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const EXPORT_PAGE = 200;
const EXPORT_MAX = 10000;
const REFRESH_MS = 5000;
let timer = null;
let onError = () => {};
let active = false;
let selected = null;
let typing = null;

const STATUS = { '2xx': [200, 299], '4xx': [400, 499], '5xx': [500, 599] };

function filters() {
  const f = new FormData($('filters'));
  const out = {};
  for (const name of ['q', 'tool', 'client_id', 'model', 'provider', 'lifecycle_status']) {
    const v = String(f.get(name) || '').trim();
    if (v) out[name] = v;
  }
  const status = STATUS[f.get('status')];
  if (status) { [out.status_min, out.status_max] = status; }
  return out;
}

export function init(showError) {
  onError = showError;
  const form = $('filters');
  form.addEventListener('submit', (ev) => ev.preventDefault());
  form.addEventListener('change', (ev) => {
    if (ev.target.id === 'auto-refresh') { schedule(); return; }
    load().catch(onError);
  });
  form.addEventListener('input', (ev) => {
    if (ev.target.tagName !== 'INPUT' || ev.target.type === 'checkbox') return;
    clearTimeout(typing);
    typing = setTimeout(() => load().catch(onError), 300);
  });
  $('export-csv').addEventListener('click', () => exportRows('csv').catch(onError));
  $('export-json').addEventListener('click', () => exportRows('json').catch(onError));
  $('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('visibilitychange', schedule);
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeDetail(); });
}

export async function enter() {
  active = true;
  await load();
  schedule();
}

export function leave() {
  active = false;
  clearTimeout(timer);
  closeDetail();
}

function schedule() {
  clearTimeout(timer);
  if (!active || !$('auto-refresh').checked || document.visibilityState !== 'visible') return;
  timer = setTimeout(async () => {
    try { await load(); } catch (err) { onError(err); }
    schedule();
  }, REFRESH_MS);
}

async function load() {
  const section = $('view-requests');
  section.dataset.ready = '0';
  const f = filters();
  const key = JSON.stringify(f);
  const rows = await api(`/admin/logs${query({ ...f, limit: PAGE })}`);
  // A newer filter may have been applied while this one was in flight.
  if (key !== JSON.stringify(filters())) return;
  const body = fillTable($('requests-table'), [
    { label: 'Started (UTC)' }, { label: 'Tool' }, { label: 'Client' }, { label: 'Model' },
    { label: 'Provider' }, { label: 'Status', num: true }, { label: 'Lifecycle' },
    { label: 'In', num: true }, { label: 'Out', num: true }, { label: 'Cost', num: true },
    { label: 'Latency', num: true }, { label: 'Path' },
  ], rows.map((r) => [r.id, [
    { text: fmtTime(r.started_at), value: r.started_at },
    { text: r.tool || '' }, { text: r.client_id || '' }, { text: r.model },
    { text: r.provider }, { text: r.status ?? '–', value: r.status },
    { text: r.lifecycle_status },
    { text: fmtInt(r.prompt_tokens), value: r.prompt_tokens },
    { text: fmtInt(r.completion_tokens), value: r.completion_tokens },
    { text: fmtUsd(r.cost_nanousd), value: r.cost_nanousd },
    { text: fmtMs(r.latency_ms), value: r.latency_ms },
    { text: r.path },
  ]]), 'No request matches.');
  for (const tr of body.querySelectorAll('tr[data-row-id]')) {
    tr.tabIndex = 0;
    if (tr.dataset.rowId === selected) tr.setAttribute('aria-selected', 'true');
    tr.addEventListener('click', () => openDetail(tr.dataset.rowId).catch(onError));
    tr.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') openDetail(tr.dataset.rowId).catch(onError);
    });
  }
  section.dataset.count = String(rows.length);
  section.dataset.ready = '1';
}

function closeDetail() {
  selected = null;
  $('detail').hidden = true;
  for (const tr of document.querySelectorAll('#requests-table tr[aria-selected]')) tr.removeAttribute('aria-selected');
}

// Cost by kind at the prices in force now ($ per million tokens); the row's stored cost
// (computed when it was finalized) is shown beside it.
function breakdown(row, pricing) {
  const p = pricing && pricing.match && pricing.match.pricing;
  if (!p) return el('p', { class: 'note', text: 'No price found for this model now.' });
  const uncached = row.meta_json && row.meta_json.includes('"openai"')
    ? Math.max(0, (row.prompt_tokens || 0) - (row.cache_read_tokens || 0))
    : (row.prompt_tokens || 0);
  const kinds = [
    ['input', uncached, p.input],
    ['output', row.completion_tokens || 0, p.output],
    ['cache read', row.cache_read_tokens || 0, p.cache_read ?? p.input],
    ['cache write', row.cache_creation_tokens || 0, p.cache_write ?? p.input],
  ];
  const table = el('table', { class: 'grid' });
  fillTable(table, [{ label: 'Kind' }, { label: 'Tokens', num: true }, { label: '$/M', num: true }, { label: 'Cost', num: true }],
    kinds.map(([k, n, price]) => [k, [
      { text: k }, { text: fmtInt(n), value: n }, { text: String(price ?? '–') },
      { text: fmtUsd(Math.round(n * (price || 0) * 1000)), value: Math.round(n * (price || 0) * 1000) },
    ]]));
  return el('div', {}, el('p', { class: 'note', text: `Prices matched as ${pricing.match.key} (${pricing.match.source}).` }), table);
}

async function openDetail(id) {
  selected = id;
  for (const tr of document.querySelectorAll('#requests-table tr[data-row-id]')) {
    if (tr.dataset.rowId === id) tr.setAttribute('aria-selected', 'true');
    else tr.removeAttribute('aria-selected');
  }
  const row = await api(`/admin/logs/${encodeURIComponent(id)}`);
  const price = (model) => api(`/admin/pricing${query({ model, provider: row.provider })}`);
  const [audit, first] = await Promise.all([
    api(`/admin/logs/${encodeURIComponent(id)}/cost-audit`),
    price(row.actual_model || row.model),
  ]);
  // The response's model may be a dated name the price table lacks; the requested one may not.
  const pricing = first.match || !row.actual_model || row.actual_model === row.model ? first : await price(row.model);
  $('detail-title').textContent = `Request ${row.id}`;
  const dl = el('dl');
  for (const [k, v] of Object.entries(row)) {
    dl.append(el('dt', { text: k }), el('dd', { 'data-field': k, 'data-value': v ?? '', text: v ?? '–' }));
  }
  const auditTable = el('table', { class: 'grid' });
  fillTable(auditTable, [{ label: 'When' }, { label: 'Source' }, { label: 'Cost', num: true }],
    audit.map((a) => [a.id, [{ text: a.calc_at }, { text: a.source || '' }, { text: fmtUsd(a.cost_nanousd), value: a.cost_nanousd }]]),
    'No cost audit.');
  $('detail-body').replaceChildren(
    el('h3', { text: 'Summary' }),
    el('p', {}, `${row.lifecycle_status}, status ${row.status ?? '–'}, ${fmtMs(row.latency_ms)}, cost ${fmtUsd(row.cost_nanousd)}`,
      row.error_message ? el('span', { class: 'error', text: ` — ${row.error_code || ''} ${row.error_message}` }) : null),
    el('h3', { text: 'Cost by kind' }), breakdown(row, pricing),
    el('h3', { text: 'Cost audit' }), auditTable,
    el('h3', { text: 'Every column' }), dl,
  );
  $('detail').hidden = false;
  $('detail-close').focus();
}

const CSV_COLUMNS = ['id', 'started_at', 'tool', 'client_id', 'model', 'actual_model', 'provider',
  'path', 'status', 'lifecycle_status', 'prompt_tokens', 'completion_tokens', 'cache_read_tokens',
  'cache_creation_tokens', 'reasoning_tokens', 'total_tokens', 'cost_nanousd', 'cost_usd',
  'latency_ms', 'error_code', 'error_message', 'request_id', 'cliproxy_account'];

function csvCell(v) {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function exportRows(format) {
  const f = filters();
  const rows = [];
  for (let offset = 0; offset < EXPORT_MAX; offset += EXPORT_PAGE) {
    const page = await api(`/admin/logs${query({ ...f, limit: EXPORT_PAGE, offset })}`);
    rows.push(...page);
    if (page.length < EXPORT_PAGE) break;
  }
  const text = format === 'json'
    ? JSON.stringify(rows, null, 2)
    : [CSV_COLUMNS.join(','), ...rows.map((r) => CSV_COLUMNS.map((c) => csvCell(r[c])).join(','))].join('\r\n') + '\r\n';
  const type = format === 'json' ? 'application/json' : 'text/csv';
  const link = $('export-link');
  if (link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = `agent-cli-proxy-requests.${format}`;
  link.dataset.format = format;
  link.dataset.rows = String(rows.length);
  link.click();
}
