// Request-level: the PostgREST requests the deployed push store makes (the embedded-database
// integration test covers the same operations over Postgres).

import { serviceClient } from "../_shared/supabase.ts";
import { assertEquals, recordingFetch } from "../_shared/testing.ts";
import { SupabasePushStore } from "./store_supabase.ts";

const env: Record<string, string> = {
  SUPABASE_URL: "http://project.local",
  SUPABASE_SERVICE_ROLE_KEY: "service-role-key",
};
const NOTE = "b0000000-0000-4000-8000-000000000001";
const DEVICE = "d0000000-0000-4000-8000-000000000001";

function storeAnswering(rows: unknown) {
  const recorder = recordingFetch(() => ({ body: rows }));
  const store = new SupabasePushStore(serviceClient((name) => env[name], recorder.fetch));
  return { store, captured: recorder.captured };
}

Deno.test("claiming inserts the delivery ignoring duplicates and reads back what it made", async () => {
  const made = storeAnswering([{ id: "x" }]);
  assertEquals(await made.store.claim(NOTE, DEVICE), true);
  const [call] = made.captured;
  assertEquals([call.method, call.path, call.query.on_conflict, call.query.select], [
    "POST",
    "/rest/v1/push_deliveries",
    "notification_id,device_id",
    "id",
  ]);
  assertEquals(call.headers.prefer.split(",").map((p) => p.trim()).sort(), [
    "resolution=ignore-duplicates",
    "return=representation",
  ]);
  assertEquals(call.headers.authorization, "Bearer service-role-key");
  assertEquals(JSON.parse(call.body), { notification_id: NOTE, device_id: DEVICE });
  // A duplicate comes back as no row: someone else claimed it.
  assertEquals(await storeAnswering([]).store.claim(NOTE, DEVICE), false);
});

Deno.test("reads filter on the recipient, the category and tokens that exist", async () => {
  const { store, captured } = storeAnswering([]);
  await store.devices("u1");
  assertEquals(captured[0].query, {
    select: "id,platform,push_token",
    user_id: "eq.u1",
    push_token: "not.is.null",
    order: "id.asc",
  });
  const absent = storeAnswering(null);
  assertEquals(await absent.store.categoryEnabled("u1", "marketing"), true, "no row: enabled");
  assertEquals(absent.captured[0].query, {
    select: "enabled",
    user_id: "eq.u1",
    category: "eq.marketing",
  });
  assertEquals(await storeAnswering({ enabled: false }).store.categoryEnabled("u1", "x"), false);
});

Deno.test("recording and pruning update exactly the delivery and the unchanged token", async () => {
  const { store, captured } = storeAnswering(null);
  await store.record(NOTE, DEVICE, {
    failedAt: new Date("2026-12-02T12:00:00Z"),
    reason: "apns 410 Unregistered",
  });
  await store.pruneToken(DEVICE, "tok");
  assertEquals(captured.map((c) => [c.method, c.path, c.query, JSON.parse(c.body)]), [
    ["PATCH", "/rest/v1/push_deliveries", {
      notification_id: `eq.${NOTE}`,
      device_id: `eq.${DEVICE}`,
    }, { failed_at: "2026-12-02T12:00:00.000Z", failure_reason: "apns 410 Unregistered" }],
    ["PATCH", "/rest/v1/devices", { id: `eq.${DEVICE}`, push_token: "eq.tok" }, {
      push_token: null,
    }],
  ]);
});

Deno.test("a PostgREST error surfaces as an error, not as 'no row'", async () => {
  const recorder = recordingFetch(() => ({
    status: 401,
    body: { code: "PGRST301", message: "JWT expired" },
  }));
  const store = new SupabasePushStore(serviceClient((name) => env[name], recorder.fetch));
  let message = "";
  await store.notification(NOTE).catch((error) => message = (error as Error).message);
  assertEquals(message, `notification ${NOTE}: JWT expired`);
});
