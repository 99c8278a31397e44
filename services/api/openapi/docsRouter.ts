/**
 * `GET /openapi.json` (the document of apiDocument.ts) and `GET /docs`, a reference page: Swagger UI
 * from the swagger-ui-dist package, served by the region itself with a Content-Security-Policy that
 * allows nothing from another origin. Both are open (mounted before authentication in app.ts): the
 * document describes the API and holds no data, and a reader without a key can still see how to
 * get one.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Router, type Response } from 'express';
import { notFoundHandler } from '../http/errorHandler.js';
import { buildApiDocument, type ApiDocumentOptions } from './apiDocument.js';

/** Nothing from elsewhere: scripts, styles, images and fetches come from this region only. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SWAGGER_UI_FILES: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hothot region API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"><noscript>This page renders <a href="/openapi.json">/openapi.json</a> with JavaScript.</noscript></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// No validator badge (it would send the document to validator.swagger.io), no outside links fetched.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  validatorUrl: null,
  deepLinking: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
});
`;

export function docsRouter(options: ApiDocumentOptions): Router {
  const router = Router();
  let documentJson: string | undefined;
  const files = new Map<string, Buffer>();
  const uiDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

  const send = (res: Response, type: string, body: string | Buffer) => {
    res.setHeader('Content-Type', type);
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-cache');
    res.end(body);
  };

  router.get('/openapi.json', (_req, res) => {
    documentJson ??= JSON.stringify(buildApiDocument(options));
    send(res, 'application/json; charset=utf-8', documentJson);
  });
  router.get('/docs', (_req, res) => send(res, 'text/html; charset=utf-8', PAGE));
  router.get('/docs/:file', (req, res, next) => {
    const name = req.params.file;
    if (name === 'init.js') {
      send(res, 'text/javascript; charset=utf-8', INIT);
      return;
    }
    const type = SWAGGER_UI_FILES[name];
    if (type === undefined) {
      notFoundHandler(req, res, next); // route_not_found, also without credentials
      return;
    }
    let body = files.get(name);
    if (body === undefined) {
      body = readFileSync(join(uiDir, name));
      files.set(name, body);
    }
    send(res, type, body);
  });
  return router;
}
