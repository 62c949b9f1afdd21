// A React app with a Herald bell in its top bar. Plain createElement (no JSX), so Vite
// needs no plugin. The bell is the package's custom element: importing
// '@herald/client/bell' defines <herald-bell>.
import { createElement as h, useEffect, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import '@herald/client/bell';
import './style.css';

// Where Herald is (scripts/up's defaults; ?api= and ?stream= override) and the user's
// token. A real app gets the token from its own backend; this example takes it once
// from the URL fragment (#token=…, never sent to a server) and forgets the URL.
const params = new URLSearchParams(location.search);
const API_URL = params.get('api') || 'http://127.0.0.1:8080';
const STREAM_URL = params.get('stream') || 'http://127.0.0.1:8081';
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.has('token')) {
  sessionStorage.setItem('example.token', hash.get('token'));
  history.replaceState(null, '', location.pathname + location.search);
}
const getToken = async () => sessionStorage.getItem('example.token');

function Bell({ onUnread }) {
  const ref = useRef(null);
  useEffect(() => {
    const bell = ref.current;
    bell.getToken = getToken;
    const listener = (e) => onUnread(e.detail.unread);
    bell.addEventListener('herald-unread', listener);
    return () => bell.removeEventListener('herald-unread', listener);
  }, [onUnread]);
  return h('herald-bell', { ref, 'api-url': API_URL, 'stream-url': STREAM_URL });
}

const PROJECTS = [
  ['Checkout v2', 'Ships Friday', 72],
  ['Mobile onboarding', 'In review', 45],
  ['Billing migration', 'Blocked on finance', 18],
];

function App() {
  const [unread, setUnread] = useState(null);
  return h('div', { className: 'app' },
    h('header', { className: 'bar' },
      h('span', { className: 'brand' }, '◆ Acme Projects'),
      h('nav', null, h('a', { href: '#', className: 'current' }, 'Projects'), h('a', { href: '#' }, 'Team')),
      h('div', { className: 'right' }, h(Bell, { onUnread: setUnread }), h('span', { className: 'avatar' }, 'AL'))),
    h('main', null,
      h('h1', null, 'Projects'),
      h('p', { className: 'muted', 'data-testid': 'unread-summary' },
        unread === null ? 'Loading your notifications…' : `You have ${unread} unread notification${unread === 1 ? '' : 's'}.`),
      h('ul', { className: 'cards' }, PROJECTS.map(([name, state, pct]) =>
        h('li', { key: name, className: 'card' },
          h('strong', null, name), h('span', { className: 'muted' }, state),
          h('div', { className: 'meter' }, h('div', { style: { width: pct + '%' } })))))));
}

createRoot(document.getElementById('root')).render(h(App));
