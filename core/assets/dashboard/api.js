// Calls to the daemon's admin API, carrying whichever credential the page signed in with:
// the admin token (kept in sessionStorage, token mode) or the session cookie plus its CSRF
// value on state-changing calls (password mode).

const TOKEN_KEY = 'acp-admin-token';
const CSRF_KEY = 'acp-csrf';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
  get unauthorized() {
    return this.status === 401 || (this.status === 403 && this.body && this.body.code === 'UNAUTHORIZED');
  }
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function setCsrf(csrf) {
  if (csrf) sessionStorage.setItem(CSRF_KEY, csrf);
  else sessionStorage.removeItem(CSRF_KEY);
}

// `opts.json` is sent as the JSON body; `opts.anyStatus` returns the parsed body whatever
// the status (for /ready, which answers 503 with its report).
export async function api(path, opts = {}) {
  const method = opts.method || 'GET';
  const headers = { accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers['x-admin-token'] = token;
  const csrf = sessionStorage.getItem(CSRF_KEY);
  if (method !== 'GET' && csrf) headers['x-acp-csrf'] = csrf;
  let body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok && !opts.anyStatus) throw new ApiError(res.status, data);
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
