// The HTTP face of export-my-data with recording ports: inline below the threshold, stored
// with a signed URL above it, and bad input answered as JSON errors.

import { HttpError } from "../_shared/http.ts";
import { hmacKey, signJwt } from "../_shared/jwt.ts";
import { assertEquals } from "../_shared/testing.ts";
import { makeHandler } from "./handler.ts";
import type { ExportSource, ExportStorage } from "./ports.ts";

const USER = "c0000000-0000-4000-8000-000000000001";
const NOW = new Date("2026-12-02T12:00:00.000Z");

async function userJwt(): Promise<string> {
  return await signJwt("HS256", await hmacKey("secret"), { sub: USER, role: "authenticated" });
}

function world(document: Record<string, unknown> = { version: 1, user_id: USER, devices: [] }) {
  const exported: string[] = [];
  const stored: { path: string; text: string; ttl: number }[] = [];
  const source: ExportSource = {
    exportAs: (jwt) => {
      exported.push(jwt);
      if (jwt.endsWith("refused")) throw new HttpError(401, "not signed in: JWT expired");
      return Promise.resolve(document);
    },
  };
  const storage: ExportStorage = {
    store: (_jwt, path, bytes, ttl) => {
      stored.push({ path, text: new TextDecoder().decode(bytes), ttl });
      return Promise.resolve({
        bucket: "exports",
        path,
        signedUrl: `https://project.test/sign/${path}`,
      });
    },
  };
  return { source, storage, exported, stored };
}

function post(jwt: string | null, body?: string): Request {
  const headers: Record<string, string> = jwt ? { authorization: `Bearer ${jwt}` } : {};
  return new Request("http://functions.local/export-my-data", { method: "POST", headers, body });
}

Deno.test("a small export is answered inline, as the document itself", async () => {
  const { source, storage, exported, stored } = world();
  const handler = makeHandler({
    source,
    storage,
    now: () => NOW,
    inlineMaxBytes: 1000,
    urlTtlSeconds: 60,
  });
  const jwt = await userJwt();
  const response = await handler(post(jwt, "{}"));
  assertEquals(response.status, 200);
  assertEquals(await response.json(), { version: 1, user_id: USER, devices: [] });
  assertEquals(response.headers.get("access-control-allow-origin"), "*");
  assertEquals([exported, stored.length], [[jwt], 0]);
});

Deno.test("a large export is stored in the user's folder and answered with a signed URL", async () => {
  const document = { version: 1, user_id: USER, messages_sent: ["x".repeat(200)] };
  const { source, storage, stored } = world(document);
  const handler = makeHandler({
    source,
    storage,
    now: () => NOW,
    inlineMaxBytes: 100,
    urlTtlSeconds: 600,
  });
  const response = await handler(post(await userJwt()));
  const path = `${USER}/export-2026-12-02T12-00-00-000Z.json`;
  assertEquals(await response.json(), {
    user_id: USER,
    bytes: JSON.stringify(document).length,
    bucket: "exports",
    path,
    signed_url: `https://project.test/sign/${path}`,
    expires_at: "2026-12-02T12:10:00.000Z",
  });
  assertEquals(stored, [{ path, text: JSON.stringify(document), ttl: 600 }]);
});

Deno.test("export-my-data refuses bad input with JSON errors and touches nothing", async () => {
  const { source, storage, exported } = world();
  const handler = makeHandler({
    source,
    storage,
    now: () => NOW,
    inlineMaxBytes: 1000,
    urlTtlSeconds: 60,
  });
  const jwt = await userJwt();
  const cases: [Request, number, string][] = [
    [new Request("http://functions.local/export-my-data"), 405, "POST only"],
    [post(null), 401, "missing bearer token (Authorization: Bearer <jwt>)"],
    [post("not-a-jwt"), 401, "the bearer token is not a JWT"],
    [post(jwt, "{oops"), 400, "body is not JSON"],
    [post(jwt, '"text"'), 400, "body must be empty or a JSON object"],
  ];
  for (const [request, status, error] of cases) {
    const response = await handler(request);
    assertEquals([response.status, await response.json()], [status, { error }], error);
    assertEquals(response.headers.get("content-type"), "application/json");
  }
  assertEquals(exported, []);
  const refused = await handler(post(`${jwt}refused`));
  assertEquals([refused.status, await refused.json()], [401, {
    error: "not signed in: JWT expired",
  }]);
});

Deno.test("a browser's preflight is answered with the CORS headers", async () => {
  const { source, storage } = world();
  const handler = makeHandler({
    source,
    storage,
    now: () => NOW,
    inlineMaxBytes: 1,
    urlTtlSeconds: 1,
  });
  const response = await handler(
    new Request("http://functions.local/export-my-data", { method: "OPTIONS" }),
  );
  assertEquals(response.status, 204);
  assertEquals(
    response.headers.get("access-control-allow-headers"),
    "authorization, x-client-info, apikey, content-type",
  );
});
