// Request-level: the API calls the deployed export makes, all with the caller's token (so
// PostgREST and Storage apply the caller's policies and the stored file is the caller's).

import { HttpError } from "../_shared/http.ts";
import { assertEquals, recordingFetch } from "../_shared/testing.ts";
import { SupabaseExportSource, SupabaseExportStorage } from "./supabase_ports.ts";

const env: Record<string, string> = {
  SUPABASE_URL: "http://project.local",
  SUPABASE_ANON_KEY: "anon-key",
};
const read = (name: string) => env[name];
const USER = "c0000000-0000-4000-8000-000000000001";

Deno.test("the export is the caller's RPC call of export_my_data", async () => {
  const { fetch, captured } = recordingFetch(() => ({ body: { version: 1, user_id: USER } }));
  const document = await new SupabaseExportSource(read, fetch).exportAs("user-jwt");
  assertEquals(document, { version: 1, user_id: USER });
  assertEquals(
    [captured[0].method, captured[0].path, captured[0].headers.authorization],
    ["POST", "/rest/v1/rpc/export_my_data", "Bearer user-jwt"],
  );
});

Deno.test("a token PostgREST refuses, or one without a user, is a 401", async () => {
  for (
    const [status, body] of [
      [401, { code: "PGRST301", message: "JWT expired" }],
      [401, { code: "42501", message: "permission denied for function export_my_data" }],
    ] as const
  ) {
    const { fetch } = recordingFetch(() => ({ status, body }));
    const error = await new SupabaseExportSource(read, fetch).exportAs("jwt").catch((e) => e);
    assertEquals([error instanceof HttpError, error.status, error.message], [
      true,
      401,
      `not signed in: ${body.message}`,
    ]);
  }
});

Deno.test("storing lists and removes the caller's earlier exports, uploads, then signs", async () => {
  const { fetch, captured } = recordingFetch((call) => {
    if (call.path.endsWith("/object/list/exports")) return { body: [{ name: "export-old.json" }] };
    if (call.path.startsWith("/storage/v1/object/sign/")) {
      return { body: { signedURL: `/object/sign/exports/${USER}/export-new.json?token=t` } };
    }
    return { body: { Key: "exports/x" } };
  });
  const stored = await new SupabaseExportStorage(read, fetch).store(
    "user-jwt",
    `${USER}/export-new.json`,
    new TextEncoder().encode("{}"),
    900,
  );
  assertEquals(captured.map((c) => [c.method, c.path]), [
    ["POST", "/storage/v1/object/list/exports"],
    ["DELETE", "/storage/v1/object/exports"],
    ["POST", `/storage/v1/object/exports/${USER}/export-new.json`],
    ["POST", `/storage/v1/object/sign/exports/${USER}/export-new.json`],
  ]);
  assertEquals(captured.every((c) => c.headers.authorization === "Bearer user-jwt"), true);
  assertEquals(JSON.parse(captured[0].body).prefix, USER);
  assertEquals(JSON.parse(captured[1].body), { prefixes: [`${USER}/export-old.json`] });
  assertEquals(JSON.parse(captured[3].body), { expiresIn: 900 });
  assertEquals(stored.signedUrl.startsWith("http://project.local/storage/v1/object/sign/"), true);
});
