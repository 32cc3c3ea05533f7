// The HTTP face of push-dispatch: who may call it and what bad input gets (a JSON error with
// the right status, never a stack trace).

import { assertEquals, FakeClock } from "../_shared/testing.ts";
import { makeHandler } from "./handler.ts";
import type { PushStore } from "./ports.ts";

const KEY = "service-role-key";
const NOTE = "b0000000-0000-4000-8000-000000000001";

function handlerWith(store: Partial<PushStore> = {}) {
  const looked: string[] = [];
  const full: PushStore = {
    notification: (id) => {
      looked.push(id);
      return Promise.resolve(null);
    },
    categoryEnabled: () => Promise.resolve(true),
    devices: () => Promise.resolve([]),
    claim: () => Promise.resolve(true),
    record: () => Promise.resolve(),
    pruneToken: () => Promise.resolve(),
    ...store,
  };
  const handler = makeHandler({
    store: full,
    providers: {},
    clock: new FakeClock(),
    retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
    serviceRoleKey: KEY,
  });
  return { handler, looked };
}

function post(body: string, headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) {
  return new Request("http://functions.local/push-dispatch", { method: "POST", headers, body });
}

async function answer(response: Response): Promise<[number, unknown]> {
  assertEquals(response.headers.get("content-type"), "application/json");
  return [response.status, await response.json()];
}

const webhook = (record: unknown, type = "INSERT") =>
  JSON.stringify({ type, table: "notifications", schema: "public", record, old_record: null });

Deno.test("push-dispatch refuses wrong methods and missing or wrong credentials", async () => {
  const { handler, looked } = handlerWith();
  const get = await handler(new Request("http://functions.local/push-dispatch"));
  assertEquals(await answer(get), [405, { error: "POST only" }]);
  assertEquals(get.headers.get("allow"), "POST, OPTIONS");
  assertEquals(await answer(await handler(post(webhook({ id: NOTE }), {}))), [401, {
    error: "missing bearer token (Authorization: Bearer <jwt>)",
  }]);
  assertEquals(
    await answer(await handler(post(webhook({ id: NOTE }), { authorization: "Bearer anon-key" }))),
    [401, { error: "push-dispatch is for the database webhook (service role) only" }],
  );
  assertEquals(looked, []);
});

Deno.test("push-dispatch answers malformed bodies with 400 and unknown ids with 404", async () => {
  const { handler, looked } = handlerWith();
  const cases: [string, number, string][] = [
    ["{not json", 400, "body is not JSON"],
    ["[1, 2]", 400, "body must be a JSON object"],
    ["{}", 400, "notification_id (a uuid) is required"],
    ['{"notification_id": "42"}', 400, "notification_id (a uuid) is required"],
    [webhook({}), 400, "record.id must be the notification's uuid"],
    [
      JSON.stringify({ type: "INSERT", table: "messages", record: { id: NOTE } }),
      400,
      "webhook for table messages; expected notifications",
    ],
    [webhook({ id: NOTE }), 404, `no notification ${NOTE}`],
  ];
  for (const [body, status, error] of cases) {
    assertEquals(await answer(await handler(post(body))), [status, { error }], body);
  }
  assertEquals(looked, [NOTE]);
});

Deno.test("push-dispatch acknowledges webhook events other than inserts without work", async () => {
  const { handler, looked } = handlerWith();
  assertEquals(await answer(await handler(post(webhook({ id: NOTE }, "UPDATE")))), [200, {
    skipped: "UPDATE events are not dispatched",
  }]);
  assertEquals(looked, []);
});

Deno.test("push-dispatch answers a failure inside as a bare 500, never a stack trace", async () => {
  const { handler } = handlerWith({
    notification: () => Promise.reject(new Error("connection to server at 10.0.0.5 lost")),
  });
  const original = console.error;
  const logged: unknown[] = [];
  console.error = (...args: unknown[]) => logged.push(...args);
  try {
    const response = await handler(post(JSON.stringify({ notification_id: NOTE })));
    assertEquals(await answer(response), [500, { error: "internal error" }]);
  } finally {
    console.error = original;
  }
  assertEquals(logged.length, 1, "the error is logged for the operator");
});
