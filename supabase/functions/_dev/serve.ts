// `pysync functions serve`: every function on loopback against the embedded database, for
// manual testing without a Supabase stack. Routes as the hosted gateway does
// (/functions/v1/<name>), with the Postgres-backed ports in place of PostgREST and Storage,
// and answers the signed URLs of stored exports (/storage/v1/object/sign/exports/...).
// Not deployed: the Supabase CLI skips folders whose name starts with "_".
//
// Environment (set by `pysync functions serve`): PYSYNC_FUNCTIONS_DB_URL, SUPABASE_JWT_SECRET,
// SUPABASE_SERVICE_ROLE_KEY, PYSYNC_FUNCTIONS_STORAGE_DIR, PYSYNC_FUNCTIONS_PORT; the push
// providers' secrets as push-dispatch reads them (unset: deliveries record "not configured").

import { jsonError } from "../_shared/http.ts";
import { base64UrlDecode, verifyHs256 } from "../_shared/jwt.ts";
import { connect } from "../_shared/postgres.ts";
import { denoEnv, required } from "../_shared/supabase.ts";
import {
  DEFAULT_INLINE_MAX_BYTES,
  DEFAULT_URL_TTL_SECONDS,
  makeHandler as exportHandler,
} from "../export-my-data/handler.ts";
import { LocalExportStorage, PostgresExportSource } from "../export-my-data/postgres_ports.ts";
import { providersFromEnv, retryFromEnv } from "../push-dispatch/config.ts";
import { makeHandler as pushHandler } from "../push-dispatch/handler.ts";
import { systemClock } from "../push-dispatch/ports.ts";
import { PostgresPushStore } from "../push-dispatch/store_postgres.ts";

const port = Number(denoEnv("PYSYNC_FUNCTIONS_PORT") || "54329");
const base = `http://127.0.0.1:${port}`;
const secret = required(denoEnv, "SUPABASE_JWT_SECRET");
const storageDir = required(denoEnv, "PYSYNC_FUNCTIONS_STORAGE_DIR");
const sql = connect(required(denoEnv, "PYSYNC_FUNCTIONS_DB_URL"));
const now = () => new Date();

const functions: Record<string, (request: Request) => Promise<Response>> = {
  "push-dispatch": pushHandler({
    store: new PostgresPushStore(sql),
    providers: providersFromEnv(denoEnv, fetch, systemClock),
    clock: systemClock,
    retry: retryFromEnv(denoEnv),
    serviceRoleKey: required(denoEnv, "SUPABASE_SERVICE_ROLE_KEY"),
  }),
  "export-my-data": exportHandler({
    source: new PostgresExportSource(sql, secret, now),
    storage: new LocalExportStorage(sql, secret, now, storageDir, base),
    now,
    inlineMaxBytes: Number(denoEnv("EXPORT_INLINE_MAX_BYTES") || DEFAULT_INLINE_MAX_BYTES),
    urlTtlSeconds: Number(denoEnv("EXPORT_URL_TTL_SECONDS") || DEFAULT_URL_TTL_SECONDS),
  }),
};

/** A signed URL's file, if its token is valid, unexpired and names this very object. */
async function signedObject(url: URL): Promise<Response> {
  const object = decodeURIComponent(url.pathname.replace("/storage/v1/object/sign/", ""));
  const token = url.searchParams.get("token") ?? "";
  if (!(await verifyHs256(token, secret))) return jsonError(400, "invalid signature");
  const claims = JSON.parse(new TextDecoder().decode(base64UrlDecode(token.split(".")[1])));
  if (claims.url !== object) return jsonError(400, "the token is for another object");
  if (claims.exp <= Math.floor(Date.now() / 1000)) return jsonError(400, "the URL has expired");
  if (object.split("/").includes("..")) return jsonError(400, "bad object name");
  try {
    return new Response(await Deno.readFile(`${storageDir}/${object}`), {
      headers: { "content-type": "application/json" },
    });
  } catch {
    return jsonError(404, "object not found");
  }
}

Deno.serve({ hostname: "127.0.0.1", port }, (request) => {
  const url = new URL(request.url);
  if (url.pathname.startsWith("/storage/v1/object/sign/")) return signedObject(url);
  const name = /^\/functions\/v1\/([a-z0-9-]+)\/?$/.exec(url.pathname)?.[1] ?? "";
  const handler = functions[name];
  if (!handler) return jsonError(404, `no function at ${url.pathname}`);
  return handler(request);
});
