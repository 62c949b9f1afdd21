// Builds @herald/client:
//   dist/*.js + dist/*.d.ts          ES modules with type declarations (tsc)
//   dist/browser/herald-bell.js      everything in one ES module (esbuild), for a
//                                    plain <script type="module"> with no bundler
// and copies the single file to web/herald-bell.js, which the /demo page serves:
// the demo runs exactly the code users get. The copy is committed, so the running
// product fetches nothing; `node scripts/build.mjs --check` (run by scripts/js-test)
// fails when it is stale.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = path.resolve(HERE, '..');
const WEB_COPY = path.resolve(PKG, '..', '..', 'web', 'herald-bell.js');
const check = process.argv.includes('--check');

rmSync(path.join(PKG, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [path.join(PKG, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(PKG, 'tsconfig.json')], { stdio: 'inherit' });

const version = JSON.parse(readFileSync(path.join(PKG, 'package.json'), 'utf8')).version;
const out = await build({
  entryPoints: [path.join(PKG, 'dist', 'bell.js')],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  write: false,
  legalComments: 'none',
  banner: { js: `/* @herald/client ${version} — <herald-bell>, HeraldStream and HeraldClient in one ES module. Built from clients/js by \`npm run build\`; do not edit. */` },
});
const bundle = out.outputFiles[0].text;
mkdirSync(path.join(PKG, 'dist', 'browser'), { recursive: true });
writeFileSync(path.join(PKG, 'dist', 'browser', 'herald-bell.js'), bundle);

if (check) {
  let committed = '';
  try { committed = readFileSync(WEB_COPY, 'utf8'); } catch { /* missing */ }
  if (committed !== bundle) {
    console.error(`web/herald-bell.js is stale: it differs from a fresh build of clients/js.\nRegenerate it with: (cd clients/js && npm run build)`);
    process.exit(1);
  }
  console.log('web/herald-bell.js matches a fresh build');
} else {
  writeFileSync(WEB_COPY, bundle);
  console.log(`built dist/ and ${path.relative(process.cwd(), WEB_COPY)} (${bundle.length} bytes)`);
}
