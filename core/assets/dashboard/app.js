// Entry point: sign-in (dashboard.md §2), the tabs, and the URL state (#view, ?range=…).

import { api, ApiError, setCsrf, setToken } from './api.js';
import * as overview from './overview.js';
import * as requests from './requests.js';
import * as health from './health.js';
import * as accounts from './accounts.js';
import * as keys from './keys.js';

const VIEWS = { overview, requests, health, accounts, keys };
let session = { mode: 'open', authenticated: false };
let current = null;

const $ = (id) => document.getElementById(id);

export function showError(err) {
  if (err instanceof ApiError && err.unauthorized) { showLogin(); return; }
  const banner = $('banner');
  banner.textContent = `Could not load: ${err.message}`;
  banner.hidden = false;
}

function clearError() { $('banner').hidden = true; }

function showLogin(message) {
  for (const v of Object.keys(VIEWS)) $(`view-${v}`).hidden = true;
  if (current && VIEWS[current].leave) VIEWS[current].leave();
  current = null;
  $('tabs').hidden = true;
  $('logout').hidden = true;
  const token = session.mode === 'token';
  $('login-label').textContent = token ? 'Admin token (ADMIN_API_KEY)' : 'Password';
  $('login-secret').autocomplete = token ? 'off' : 'current-password';
  $('login-error').hidden = !message;
  $('login-error').textContent = message || '';
  $('login').hidden = false;
  $('login-secret').focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const secret = $('login-secret').value;
  try {
    if (session.mode === 'token') {
      setToken(secret);
      const s = await api('/admin/session');
      if (!s.authenticated) { setToken(''); showLogin('That token is not the admin token.'); return; }
    } else {
      const r = await api('/admin/session/login', { method: 'POST', json: { password: secret } });
      setCsrf(r.csrf);
    }
  } catch (err) {
    const msg = err.status === 429 ? 'Too many attempts; wait a minute.'
      : err.status === 401 ? 'Wrong password.' : err.message;
    showLogin(msg);
    return;
  }
  $('login-secret').value = '';
  session.authenticated = true;
  start();
}

async function signOut() {
  try {
    if (session.mode === 'password') await api('/admin/session/logout', { method: 'POST' });
  } catch (err) { showError(err); }
  setToken('');
  setCsrf('');
  session.authenticated = false;
  showLogin();
}

function viewFromHash() {
  const name = location.hash.replace('#', '');
  return VIEWS[name] ? name : 'overview';
}

function route() {
  const name = viewFromHash();
  if (name === current) return;
  if (current && VIEWS[current].leave) VIEWS[current].leave();
  for (const v of Object.keys(VIEWS)) $(`view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.tab === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  current = name;
  clearError();
  VIEWS[name].enter().catch(showError);
}

function start() {
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('logout').hidden = session.mode === 'open';
  current = null;
  route();
}

async function boot() {
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => { if (session.authenticated) route(); });
  for (const v of Object.values(VIEWS)) if (v.init) v.init(showError);
  try {
    session = await api('/admin/session');
  } catch (err) {
    showError(err);
    return;
  }
  if (session.csrf) setCsrf(session.csrf);
  if (session.authenticated) start();
  else showLogin();
}

boot();
