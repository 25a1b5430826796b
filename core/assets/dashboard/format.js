// Display formatting and a small DOM builder. Text goes in through textContent only, so
// nothing from the API is ever parsed as HTML.

const INT = new Intl.NumberFormat('en-US');

export function fmtInt(n) {
  return n === null || n === undefined ? '–' : INT.format(n);
}

// Money arrives in nanodollars; under $1 it shows 4 decimals, above it cents with separators.
export function fmtUsd(nano) {
  if (nano === null || nano === undefined) return '–';
  const usd = nano / 1e9;
  if (Math.abs(usd) < 1) return `$${usd.toFixed(4)}`;
  return `$${usd.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

export function fmtPct(ratio) {
  return ratio === null || ratio === undefined ? '–' : `${(ratio * 100).toFixed(1)}%`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 1000 ? `${INT.format(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function fmtTime(iso) {
  if (!iso) return '–';
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// A figure with its machine-readable twin (dashboard.md §3).
export function figure(metric, value, text) {
  return el('span', { class: 'value', 'data-metric': metric, 'data-value': value, text });
}

// A table with a header row and body rows; each row is [id, cells], each cell a
// {text, value?, num?} object or a Node.
export function fillTable(table, headers, rows, empty = 'Nothing yet.') {
  table.replaceChildren();
  const head = el('thead', {}, el('tr', {}, ...headers.map((h) =>
    el('th', { class: h.num ? 'num' : null, scope: 'col', text: h.label }))));
  const body = el('tbody');
  if (rows.length === 0) {
    body.append(el('tr', {}, el('td', { colspan: headers.length, class: 'note', text: empty })));
  }
  for (const [id, cells] of rows) {
    const tr = el('tr', { 'data-row-id': id });
    cells.forEach((c, i) => {
      if (c instanceof Node) { tr.append(el('td', {}, c)); return; }
      tr.append(el('td', {
        class: headers[i] && headers[i].num ? 'num' : null,
        'data-value': c.value,
        text: c.text,
        title: c.title,
      }));
    });
    body.append(tr);
  }
  table.append(head, body);
  return body;
}

export function statusClass(s) {
  return `status-${String(s || '').toLowerCase()}`;
}
