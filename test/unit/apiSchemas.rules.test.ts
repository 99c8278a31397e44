/**
 * The API's zod schemas (services/api/openapi/apiSchemas.ts) against the rules they describe: the
 * collection and key schemas accept exactly what itemRules accepts (the applier's decoder uses
 * itemRules), and the document's list of error codes holds every code the source can answer with.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CollectionName, ERROR_CODES, ItemKey } from '../../services/api/openapi/apiSchemas.js';
import { buildApiDocument } from '../../services/api/openapi/apiDocument.js';
import { isValidCollection, isValidKey } from '../../shared/domain/itemRules.js';

const ROOT = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

const seed = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);

describe('API schemas', () => {
  it('when a collection name or key is checked, then the schema and itemRules agree', () => {
    console.log(`apiSchemas.rules seed ${seed} (FC_SEED=${seed} reproduces it)`);
    const text = fc.oneof(
      fc.string({ maxLength: 70 }),
      fc.string({ unit: 'binary', maxLength: 600 }),
      fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,70}$/),
      fc.constantFrom('', '/', 'a/b', '\u0000', '\ud800', 'k'.repeat(512), 'k'.repeat(513), '-a', 'a-', 'ä'),
    );
    fc.assert(
      fc.property(text, (s) => {
        expect(CollectionName.safeParse(s).success).toBe(isValidCollection(s));
        expect(ItemKey.safeParse(s).success).toBe(isValidKey(s));
      }),
      { seed, numRuns: 3000 },
    );
  });

  it('when the source answers with an error code, then the document lists it', () => {
    const files = [...sourceFiles(join(ROOT, 'services')), ...sourceFiles(join(ROOT, 'shared'))];
    const codes = new Set<string>();
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      // new AppError('code', …), BadRequestError('code', …), UnavailableError('code', …), on one line or two.
      for (const m of text.matchAll(/\b(?:AppError|BadRequestError|UnavailableError)\(\s*'([a-z_]+)'/g))
        codes.add(m[1]!);
      // Bodies written by hand: { error: { code: '…' } }.
      for (const m of text.matchAll(/error: \{\s*code: '([a-z_]+)'/g)) codes.add(m[1]!);
    }
    // Subclasses with a fixed code (shared/errors/appError.ts, services/api/http/auth.ts).
    for (const fixed of ['not_found', 'precondition_failed', 'unauthenticated', 'forbidden'])
      codes.add(fixed);
    expect(codes.size).toBeGreaterThan(20);
    const missing = [...codes].filter((c) => !(ERROR_CODES as readonly string[]).includes(c));
    expect(missing, 'codes thrown but not in ERROR_CODES (services/api/openapi/apiSchemas.ts)').toEqual([]);
  });

  it('when the document is built, then every operation names its security and every error response the Error shape', () => {
    const doc = buildApiDocument({ historyMaxVersions: 20 });
    let operations = 0;
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const method of ['get', 'put', 'post', 'patch', 'delete'] as const) {
        const op = item[method];
        if (op === undefined) continue;
        operations += 1;
        expect(op.security, `${method} ${path}`).toBeDefined();
        for (const [status, response] of Object.entries(op.responses ?? {})) {
          if (Number(status) < 400) continue;
          expect(JSON.stringify(response), `${method} ${path} ${status}`).toContain(
            '#/components/schemas/Error',
          );
        }
      }
    }
    expect(operations).toBe(16);
  });
});
