#!/usr/bin/env node
// `hothot` CLI entry point. The CLI is TypeScript (infra/lab/cli.ts); this shim registers tsx's ESM
// loader in this process and imports it, so it works as `npx hothot …`, `node bin/hothot.js …` or a
// linked binary, from any working directory (tsx resolves from this package's node_modules).
import { register } from 'tsx/esm/api';

register();
await import('../infra/lab/cli.ts');
