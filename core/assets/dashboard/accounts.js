// Accounts and quotas (dashboard.md §3.4): each account's windows with used %, reset time
// and a burn-down sparkline from the stored snapshots, when quota tracking is on.

import { api, query } from './api.js';
import { el, fillTable, fmtInt, fmtUsd } from './format.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

function sparkline(points) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 120 28');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'used % over the last 24 hours');
  if (points.length > 1) {
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', points.map((v, i) =>
      `${(i / (points.length - 1)) * 118 + 1},${27 - (Math.min(100, Math.max(0, v)) / 100) * 26}`).join(' '));
    svg.append(line);
  }
  return svg;
}

function bar(pct) {
  const span = el('span');
  span.style.width = `${Math.min(100, Math.max(0, pct || 0))}%`;
  return el('div', { class: 'bar', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct ?? 0 }, span);
}

export async function enter() {
  const section = $('view-accounts');
  section.dataset.ready = '0';
  const [config, summary] = await Promise.all([api('/admin/config'), api('/admin/usage/accounts/summary')]);
  fillTable($('accounts-usage'), [
    { label: 'Account' }, { label: 'Provider' }, { label: 'Requests', num: true }, { label: 'Tokens', num: true }, { label: 'Cost', num: true },
  ], summary.map((a) => [`${a.provider}/${a.cliproxy_account}`, [
    { text: a.cliproxy_account }, { text: a.provider }, { text: fmtInt(a.request_count), value: a.request_count },
    { text: fmtInt(a.total_tokens), value: a.total_tokens }, { text: fmtUsd(a.cost_nanousd), value: a.cost_nanousd },
  ]]), 'No correlated account usage.');
  if (!config.features.hasAuthDir) {
    $('accounts-note').textContent = 'Quota tracking is off: set CLIPROXY_AUTH_DIR to the CLIProxyAPI auth directory to see each account\'s windows.';
    $('accounts-list').replaceChildren();
    section.dataset.ready = '1';
    return;
  }
  $('accounts-note').textContent = 'Latest quota snapshots; sparklines show used % over the last 24 hours.';
  const [quotas, history] = await Promise.all([api('/admin/quotas'), api(`/admin/quotas/history${query({ hours: 24 })}`)]);
  const series = new Map();
  for (const b of history.buckets) {
    for (const s of b.snapshots) {
      const k = `${s.provider}|${s.account}|${s.quota_type}|${s.model ?? ''}`;
      if (!series.has(k)) series.set(k, []);
      series.get(k).push(s.used_pct ?? 0);
    }
  }
  const byAccount = new Map();
  for (const s of quotas.snapshots) {
    const k = `${s.provider} · ${s.account}`;
    if (!byAccount.has(k)) byAccount.set(k, []);
    byAccount.get(k).push(s);
  }
  $('accounts-list').replaceChildren(...[...byAccount.entries()].map(([name, snaps]) => {
    const table = el('table', { class: 'grid' });
    fillTable(table, [{ label: 'Window' }, { label: 'Used', num: true }, { label: '' }, { label: 'Resets (UTC)' }, { label: '24 h' }],
      snaps.map((s) => [`${s.quota_type}|${s.model ?? ''}`, [
        { text: s.model ? `${s.quota_type} (${s.model})` : s.quota_type },
        { text: s.used_pct === null ? '–' : `${s.used_pct.toFixed(1)}%`, value: s.used_pct },
        bar(s.used_pct), { text: s.resets_at || '–', value: s.resets_at },
        sparkline(series.get(`${s.provider}|${s.account}|${s.quota_type}|${s.model ?? ''}`) || []),
      ]]));
    return el('div', { class: 'panel' }, el('h2', { text: name }), table);
  }));
  if (byAccount.size === 0) $('accounts-list').replaceChildren(el('p', { class: 'note', text: 'No quota snapshot yet.' }));
  section.dataset.ready = '1';
}
