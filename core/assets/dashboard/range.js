// The overview's range: UTC days, selectable by the URL (?range=today|7d|30d or
// ?from=YYYY-MM-DD&to=YYYY-MM-DD) so a view can be linked.

const DAY_MS = 86400000;
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

export function utcDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

export function fromUrl(now = Date.now()) {
  const p = new URLSearchParams(location.search);
  const from = p.get('from');
  const to = p.get('to');
  if (from && to && DAY_RE.test(from) && DAY_RE.test(to) && from <= to) {
    return { name: 'custom', from, to };
  }
  return preset(p.get('range') || '7d', now);
}

export function preset(name, now = Date.now()) {
  const back = { today: 0, '7d': 6, '30d': 29 }[name];
  if (back === undefined) return preset('7d', now);
  return { name, from: utcDay(now - back * DAY_MS), to: utcDay(now) };
}

export function toUrl(range) {
  const p = new URLSearchParams(location.search);
  p.delete('range'); p.delete('from'); p.delete('to');
  if (range.name === 'custom') { p.set('from', range.from); p.set('to', range.to); }
  else p.set('range', range.name);
  history.replaceState(null, '', `${location.pathname}?${p}${location.hash}`);
}

// Every day of the range, ascending.
export function days(range) {
  const out = [];
  for (let t = Date.parse(`${range.from}T00:00:00Z`); utcDay(t) <= range.to; t += DAY_MS) {
    out.push(utcDay(t));
    if (out.length > 400) break;
  }
  return out;
}
