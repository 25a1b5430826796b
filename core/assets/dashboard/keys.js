// Managed proxy keys (dashboard.md §3.5): list, create (the secret shown once), revoke.

import { api } from './api.js';
import { el, fillTable, fmtInt } from './format.js';

const $ = (id) => document.getElementById(id);
let onError = () => {};

export function init(showError) {
  onError = showError;
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    create().catch(onError);
  });
  $('key-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('key-secret-value').textContent);
      $('key-copy').textContent = 'Copied';
    } catch {
      // Clipboard refused (permissions): select the text so the user can copy it by hand.
      const r = document.createRange();
      r.selectNodeContents($('key-secret-value'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  });
}

async function create() {
  const name = new FormData($('key-form')).get('name').trim();
  if (!name) return;
  const k = await api('/admin/api-keys', { method: 'POST', json: { name } });
  $('key-secret-value').textContent = k.key;
  $('key-secret').dataset.keyId = String(k.id);
  $('key-copy').textContent = 'Copy';
  $('key-secret').hidden = false;
  $('key-form').reset();
  await enter(true);
}

// Revoking takes two clicks (no modal dialog): the first arms the button.
function revokeButton(k) {
  if (k.revokedAt) return el('span', { class: 'note', text: `revoked ${k.revokedAt}` });
  const b = el('button', { type: 'button', class: 'ghost', 'data-action': 'revoke', text: 'Revoke' });
  b.addEventListener('click', async () => {
    if (b.dataset.armed !== '1') { b.dataset.armed = '1'; b.textContent = 'Confirm revoke'; return; }
    try {
      await api(`/admin/api-keys/${k.id}`, { method: 'DELETE' });
      await enter(true);
    } catch (err) { onError(err); }
  });
  return b;
}

export async function enter(keepSecret = false) {
  const section = $('view-keys');
  section.dataset.ready = '0';
  if (keepSecret !== true) $('key-secret').hidden = true;
  const { apiKeys } = await api('/admin/api-keys');
  fillTable($('keys-table'), [
    { label: 'Prefix' }, { label: 'Name' }, { label: 'Created (UTC)' }, { label: 'Last used' },
    { label: 'Requests', num: true }, { label: '' },
  ], apiKeys.map((k) => [k.id, [
    { text: `${k.keyPrefix}…`, value: k.keyPrefix }, { text: k.name }, { text: k.createdAt },
    { text: k.lastUsedAt || 'never', value: k.lastUsedAt }, { text: fmtInt(k.requestCount), value: k.requestCount },
    revokeButton(k),
  ]]), 'No managed key. Create one to require keys per client.');
  section.dataset.ready = '1';
}
