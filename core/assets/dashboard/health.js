// Health (dashboard.md §3.3): every /ready check as reported (a spool check appears when the
// daemon reports one), circuit breakers, background loops and pricing freshness.

import { api } from './api.js';
import { el, fillTable, fmtInt, fmtMs, statusClass } from './format.js';

const $ = (id) => document.getElementById(id);

function details(check) {
  const parts = [];
  for (const [k, v] of Object.entries(check)) {
    if (k === 'status' || k === 'loopHealth' || k === 'loops') continue;
    parts.push(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  }
  return parts.join(' · ');
}

function ago(ms) {
  return ms === null || ms === undefined ? '–' : `${fmtMs(ms)} ago`;
}

export async function enter() {
  const section = $('view-health');
  section.dataset.ready = '0';
  const [ready, breakers, pricing] = await Promise.all([
    api('/ready', { anyStatus: true }),
    api('/admin/breakers'),
    api('/admin/pricing'),
  ]);
  const checks = Object.entries((ready && ready.checks) || {});
  $('health-checks').replaceChildren(
    el('div', { class: 'card' }, el('span', { class: 'label', text: 'Overall' }),
      el('span', { class: `value ${statusClass(ready.status)}`, 'data-metric': 'ready-status', 'data-value': ready.status, text: ready.status })),
    ...checks.map(([name, c]) => el('div', { class: 'card', 'data-row-id': name },
      el('span', { class: 'label', text: name }),
      el('span', { class: `value ${statusClass(c.status)}`, 'data-metric': `check-${name}`, 'data-value': c.status, text: c.status }),
      el('span', { class: 'sub', text: details(c) }))),
  );
  fillTable($('breakers'), [
    { label: 'Provider' }, { label: 'State' }, { label: 'Failures', num: true }, { label: 'Opened' }, { label: 'Next probe' },
  ], breakers.breakers.map((b) => [b.providerId, [
    { text: b.providerId }, { text: b.state, value: b.state }, { text: fmtInt(b.failures), value: b.failures },
    { text: b.openedAt ? new Date(b.openedAt).toISOString() : '–', value: b.openedAt },
    { text: b.state === 'open' && b.nextProbeAt ? new Date(b.nextProbeAt).toISOString() : (b.state === 'open' ? 'after the half-open window' : '–') },
  ]]), 'No upstream called yet.');
  const sup = ready.checks && ready.checks.supervisor;
  const loops = (sup && sup.loopHealth) || [];
  fillTable($('loops'), [
    { label: 'Loop' }, { label: 'Status' }, { label: 'Last success' }, { label: 'Last error' }, { label: 'Failures', num: true },
  ], loops.map((l) => [l.name, [
    { text: l.name }, { text: l.status, value: l.status }, { text: ago(l.lastSuccessAgeMs), value: l.lastSuccessAgeMs },
    { text: ago(l.lastErrorAgeMs), value: l.lastErrorAgeMs }, { text: fmtInt(l.consecutiveFailures), value: l.consecutiveFailures },
  ]]), 'No loop reported.');
  $('pricing').replaceChildren(el('p', {},
    pricing.loaded ? 'Prices loaded' : 'Prices not loaded',
    pricing.fetchedAt ? `, fetched ${new Date(pricing.fetchedAt).toISOString()} (${ago(pricing.ageMs)})` : '',
    `, from ${pricing.url}.`));
  $('pricing').dataset.ageMs = pricing.ageMs ?? '';
  section.dataset.ready = '1';
}
