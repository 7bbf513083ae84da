#!/usr/bin/env node
// In a checkout (src/ present) runs the TypeScript source via tsx, so an old dist/ can never
// stand in for the code being edited; an installed package ships only dist/.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  try {
    const { register } = await import('tsx/esm/api');
    register();
    await import(source.href);
  } catch (e) {
    // A fresh clone has no node_modules yet: one line with the command, not a loader stack trace.
    const pkg = e?.code === 'ERR_MODULE_NOT_FOUND' && /Cannot find package '([^']+)'/.exec(e.message)?.[1];
    if (!pkg) throw e;
    const checkout = dirname(dirname(fileURLToPath(import.meta.url)));
    process.stderr.write(`tun6in4: this checkout's dependencies are not installed (no package ${pkg}): run npm ci (or npm install) in ${checkout}\n`);
    process.exit(1);
  }
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
