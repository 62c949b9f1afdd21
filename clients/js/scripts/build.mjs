// Builds @herald/client:
//   dist/*.js + dist/*.d.ts          ES modules with type declarations (tsc)
//   dist/browser/herald-bell.js      everything in one ES module (esbuild), for a
//                                    plain <script type="module"> with no bundler
//   dist/browser/herald-sw.js        the service worker (Web Push: notifications,
//                                    clicks, the app badge) as one classic script, which
//                                    every browser runs as a service worker or importScripts()
// and copies both single files to web/ (herald-bell.js, herald-sw.js), which the /demo
// page serves: the demo runs exactly the code users get. The copies are committed, so
// the running product fetches nothing; `node scripts/build.mjs --check` (run by
// scripts/js-test) fails when one is stale. `--dist` builds dist/ alone: what
// `npm pack` runs first (the `prepack` script), so a tarball always holds fresh code
// (dist/ is not committed) and packing never touches files outside the package.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = path.resolve(HERE, '..');
const WEB = path.resolve(PKG, '..', '..', 'web');
const check = process.argv.includes('--check');
const distOnly = process.argv.includes('--dist');

rmSync(path.join(PKG, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [path.join(PKG, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(PKG, 'tsconfig.json')], { stdio: 'inherit' });

const version = JSON.parse(readFileSync(path.join(PKG, 'package.json'), 'utf8')).version;
const bell = await build({
  entryPoints: [path.join(PKG, 'dist', 'bell.js')],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  write: false,
  legalComments: 'none',
  banner: { js: `/* @herald/client ${version} — <herald-bell>, HeraldStream and HeraldClient in one ES module. Built from clients/js by \`npm run build\`; do not edit. */` },
});
const sw = await build({
  stdin: {
    contents: "import { installHeraldServiceWorker } from './sw.js';\ninstallHeraldServiceWorker(self);\n",
    resolveDir: path.join(PKG, 'dist'),
    sourcefile: 'herald-sw-entry.js',
  },
  bundle: true,
  format: 'iife',
  target: 'es2020',
  write: false,
  legalComments: 'none',
  banner: { js: `/* @herald/client ${version} — herald-sw.js, Herald's Web Push service worker (push → system notification and app badge; notificationclick → focus or open). Serve it from your app's origin, or importScripts() it from your own service worker; options: ?icon=&badge=&url=. Built from clients/js by \`npm run build\`; do not edit. */` },
});
const outputs = [
  ['herald-bell.js', bell.outputFiles[0].text],
  ['herald-sw.js', sw.outputFiles[0].text],
];
mkdirSync(path.join(PKG, 'dist', 'browser'), { recursive: true });
for (const [name, text] of outputs) writeFileSync(path.join(PKG, 'dist', 'browser', name), text);

if (check) {
  let stale = 0;
  for (const [name, text] of outputs) {
    let committed = '';
    try { committed = readFileSync(path.join(WEB, name), 'utf8'); } catch { /* missing */ }
    if (committed !== text) {
      console.error(`web/${name} is stale: it differs from a fresh build of clients/js.\nRegenerate it with: (cd clients/js && npm run build)`);
      stale++;
    }
  }
  if (stale) process.exit(1);
  console.log(`web/${outputs.map(([n]) => n).join(' and web/')} match a fresh build`);
} else if (distOnly) {
  // stderr: `npm pack` prints the tarball's name on stdout, and scripts read it there.
  console.error(`built dist/ (${outputs.map(([n, t]) => `browser/${n} ${t.length} bytes`).join(', ')})`);
} else {
  for (const [name, text] of outputs) {
    writeFileSync(path.join(WEB, name), text);
    console.log(`built dist/ and ${path.relative(process.cwd(), path.join(WEB, name))} (${text.length} bytes)`);
  }
}
