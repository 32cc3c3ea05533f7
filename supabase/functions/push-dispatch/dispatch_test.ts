// Push dispatch against fake FCM and APNs (providers, retries, pruning) with an in-memory
// ledger; integration_test.ts runs the same against the real database.

import { assert, assertEquals, FakeClock } from "../_shared/testing.ts";
import { providersFromEnv, retryFromEnv } from "./config.ts";
import { dispatch, type DispatchPorts } from "./dispatch.ts";
import { FakePush } from "./fakes.ts";
import type { Delivery, Device, Notification, PushStore } from "./ports.ts";
import { DEFAULT_RETRY, parseRetryAfter } from "./retry.ts";

const ALICE = "a0000000-0000-4000-8000-000000000001";
const NOTE = "b0000000-0000-4000-8000-000000000001";

/** The ledger's rules in memory: one delivery per (notification, device), tokens prunable. */
class MemoryStore implements PushStore {
  deliveries = new Map<string, Partial<Delivery>>();
  preferences = new Map<string, boolean>();
  constructor(public notifications: Notification[], public deviceRows: Device[]) {}

  notification(id: string) {
    return Promise.resolve(this.notifications.find((n) => n.id === id) ?? null);
  }
  categoryEnabled(userId: string, category: string) {
    return Promise.resolve(this.preferences.get(`${userId}/${category}`) ?? true);
  }
  devices(_userId: string) {
    return Promise.resolve(this.deviceRows.filter((d) => d.push_token));
  }
  claim(notificationId: string, deviceId: string) {
    const key = `${notificationId}/${deviceId}`;
    if (this.deliveries.has(key)) return Promise.resolve(false);
    this.deliveries.set(key, {});
    return Promise.resolve(true);
  }
  record(notificationId: string, deviceId: string, delivery: Delivery) {
    this.deliveries.set(`${notificationId}/${deviceId}`, delivery);
    return Promise.resolve();
  }
  pruneToken(deviceId: string, token: string) {
    const device = this.deviceRows.find((d) => d.id === deviceId && d.push_token === token);
    if (device) device.push_token = "";
    return Promise.resolve();
  }
  reason(deviceId: string): string | undefined {
    const delivery = this.deliveries.get(`${NOTE}/${deviceId}`) as { reason?: string };
    return delivery?.reason;
  }
}

const note: Notification = {
  id: NOTE,
  recipient_id: ALICE,
  type: "new_message",
  category: "messages",
  title: "Sam",
  body: "See you at 5?",
  data: { conversation_id: "c1", unread: 2 },
};

function devices(): Device[] {
  return [
    { id: "d-ios", platform: "ios", push_token: "apns-token-1" },
    { id: "d-android", platform: "android", push_token: "fcm-token-1" },
    { id: "d-web", platform: "web", push_token: "fcm-token-2" },
  ];
}

async function world(options: { devices?: Device[] } = {}) {
  const fake = await FakePush.create();
  const clock = new FakeClock();
  const store = new MemoryStore([note], options.devices ?? devices());
  const env = fake.env();
  const ports: DispatchPorts = {
    store,
    clock,
    providers: providersFromEnv((name) => env[name], fake.fetch, clock),
    retry: DEFAULT_RETRY,
  };
  return { fake, clock, store, ports };
}

Deno.test("a notification reaches every device of its recipient through its provider", async () => {
  const { fake, store, ports } = await world();
  const summary = await dispatch(NOTE, ports);
  assertEquals(summary?.deliveries.map((d) => [d.device_id, d.status]), [
    ["d-ios", "sent"],
    ["d-android", "sent"],
    ["d-web", "sent"],
  ]);
  assertEquals(fake.calls.filter((c) => c.service !== "oauth").map((c) => [c.service, c.token]), [
    ["apns", "apns-token-1"],
    ["fcm", "fcm-token-1"],
    ["fcm", "fcm-token-2"],
  ]);
  // The OAuth assertion and the APNs token both verified (the fakes refuse bad signatures).
  assert([...store.deliveries.values()].every((d) => "sentAt" in d), "every delivery sent");
});

Deno.test("the OAuth access token and the APNs provider token are reused, then renewed", async () => {
  const { fake, clock, ports } = await world();
  await dispatch(NOTE, ports);
  assertEquals(fake.count("oauth"), 1, "one token for two FCM sends");
  const fcm = ports.providers.fcm as unknown as { accessToken(): Promise<string> };
  const apns = ports.providers.apns as unknown as { providerToken(): Promise<string> };
  const first = await apns.providerToken();
  clock.advance(30 * 60 * 1000);
  await fcm.accessToken();
  assertEquals([fake.count("oauth"), await apns.providerToken() === first], [1, true]);
  clock.advance(30 * 60 * 1000); // an hour in: both expired
  await fcm.accessToken();
  assertEquals([fake.count("oauth"), await apns.providerToken() === first], [2, false]);
});

Deno.test("a revoked FCM access token is replaced and the send retried", async () => {
  const { fake, ports } = await world({
    devices: [{ id: "d-android", platform: "android", push_token: "fcm-token-1" }],
  });
  const fcm = ports.providers.fcm as unknown as { accessToken(): Promise<string> };
  fake.revoked.add(await fcm.accessToken());
  const summary = await dispatch(NOTE, ports);
  assertEquals([summary?.deliveries[0].status, summary?.deliveries[0].attempts], ["sent", 2]);
  assertEquals(fake.count("oauth"), 2);
});

Deno.test("FCM UNREGISTERED and APNs 410 record the provider's reason and prune the token", async () => {
  const { fake, store, ports } = await world();
  fake.script = { "apns-token-1": ["invalid"], "fcm-token-1": ["invalid"] };
  const summary = await dispatch(NOTE, ports);
  assertEquals(summary?.deliveries.map((d) => [d.device_id, d.status, d.token_pruned ?? false]), [
    ["d-ios", "failed", true],
    ["d-android", "failed", true],
    ["d-web", "sent", false],
  ]);
  assertEquals(store.reason("d-ios"), "apns 410 Unregistered");
  assertEquals(
    store.reason("d-android"),
    "fcm 404 UNREGISTERED: Requested entity was not found.",
  );
  assertEquals(store.deviceRows.map((d) => d.push_token), ["", "", "fcm-token-2"]);
  assertEquals(fake.count("fcm") + fake.count("apns"), 3, "an invalid token is not retried");
});

Deno.test("429 with Retry-After waits exactly as long as asked, then sends", async () => {
  const { fake, clock, store, ports } = await world({
    devices: [{ id: "d-android", platform: "android", push_token: "fcm-token-1" }],
  });
  fake.script = { "fcm-token-1": ["rate_limited", "success"] };
  const summary = await dispatch(NOTE, ports);
  assertEquals(summary?.deliveries[0], {
    device_id: "d-android",
    platform: "android",
    status: "sent",
    attempts: 2,
  });
  assertEquals(clock.slept, [7000]);
  assert("sentAt" in store.deliveries.get(`${NOTE}/d-android`)!, "recorded as sent");
});

Deno.test("APNs 429 is retried after Retry-After too", async () => {
  const { fake, clock, ports } = await world({
    devices: [{ id: "d-ios", platform: "ios", push_token: "apns-token-1" }],
  });
  fake.script = { "apns-token-1": ["rate_limited", "rate_limited", "success"] };
  fake.retryAfter = "3";
  const summary = await dispatch(NOTE, ports);
  assertEquals([summary?.deliveries[0].status, summary?.deliveries[0].attempts], ["sent", 3]);
  assertEquals(clock.slept, [3000, 3000]);
});

Deno.test("500s are retried with exponential backoff, then recorded as failures", async () => {
  const { fake, clock, store, ports } = await world();
  fake.script = { "apns-token-1": ["server_error"], "fcm-token-1": ["server_error"] };
  const summary = await dispatch(NOTE, ports);
  assertEquals(summary?.deliveries.map((d) => [d.status, d.attempts, d.token_pruned]), [
    ["failed", 3, false],
    ["failed", 3, false],
    ["sent", 1, undefined],
  ]);
  assertEquals(clock.slept.sort((a, b) => a - b), [1000, 1000, 2000, 2000]);
  assertEquals(store.reason("d-ios"), "apns 500 InternalServerError");
  assertEquals(store.reason("d-android"), "fcm 500 INTERNAL: Internal error.");
  assertEquals(store.deviceRows.map((d) => d.push_token), [
    "apns-token-1",
    "fcm-token-1",
    "fcm-token-2",
  ]);
});

Deno.test("a Retry-After beyond the longest wait is not waited for", async () => {
  const { fake, clock, store, ports } = await world({
    devices: [{ id: "d-android", platform: "android", push_token: "fcm-token-1" }],
  });
  fake.script = { "fcm-token-1": ["rate_limited"] };
  fake.retryAfter = "3600";
  await dispatch(NOTE, ports);
  assertEquals(clock.slept, []);
  assertEquals(
    store.reason("d-android"),
    "fcm 429 QUOTA_EXCEEDED: Quota exceeded. (retry after 3600s: gave up)",
  );
});

Deno.test("a network failure is transient; a provider left unconfigured is recorded", async () => {
  const clock = new FakeClock();
  const store = new MemoryStore([note], devices());
  let tries = 0;
  const summary = await dispatch(NOTE, {
    store,
    clock,
    retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 100 },
    providers: {
      fcm: {
        send: () => {
          tries++;
          return Promise.reject(new TypeError("connection refused"));
        },
      },
    },
  });
  assertEquals(summary?.deliveries.map((d) => [d.status, d.reason]), [
    ["failed", "apns is not configured"],
    ["failed", "request failed: connection refused"],
    ["failed", "request failed: connection refused"],
  ]);
  assertEquals(tries, 4);
});

Deno.test("a category the user turned off sends nothing and records nothing", async () => {
  const { fake, store, ports } = await world();
  store.preferences.set(`${ALICE}/messages`, false);
  const summary = await dispatch(NOTE, ports);
  assertEquals(summary, {
    notification_id: NOTE,
    deliveries: [],
    skipped: "category messages is turned off",
  });
  assertEquals([fake.calls.length, store.deliveries.size], [0, 0]);
});

Deno.test("dispatching the same notification twice sends nothing twice", async () => {
  const { fake, ports } = await world();
  await dispatch(NOTE, ports);
  const sends = fake.count("fcm") + fake.count("apns");
  const again = await dispatch(NOTE, ports);
  assertEquals(again?.deliveries.map((d) => d.status), [
    "already_claimed",
    "already_claimed",
    "already_claimed",
  ]);
  assertEquals(fake.count("fcm") + fake.count("apns"), sends);
});

Deno.test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = new Date("2026-12-02T12:00:00Z");
  assertEquals(parseRetryAfter("120", now), 120);
  assertEquals(parseRetryAfter("Wed, 02 Dec 2026 12:00:30 GMT", now), 30);
  assertEquals(parseRetryAfter("soon", now), undefined);
  assertEquals(parseRetryAfter(null, now), undefined);
});

Deno.test("half-configured APNs and bad retry settings fail loudly at start", () => {
  const failure = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      return (error as Error).message;
    }
    return "no error";
  };
  const clock = new FakeClock();
  assertEquals(
    failure(() => providersFromEnv((n) => (n === "APNS_KEY_ID" ? "K" : undefined), fetch, clock)),
    "APNs is half configured: APNS_TEAM_ID, APNS_PRIVATE_KEY, APNS_TOPIC not set",
  );
  assertEquals(
    failure(() =>
      providersFromEnv((n) => (n === "FCM_SERVICE_ACCOUNT" ? "{}" : undefined), fetch, clock)
    ),
    "FCM_SERVICE_ACCOUNT has no project_id",
  );
  assertEquals(
    failure(() => retryFromEnv((n) => (n === "PUSH_MAX_ATTEMPTS" ? "many" : undefined))),
    "PUSH_MAX_ATTEMPTS must be a number >= 0",
  );
  assertEquals(providersFromEnv(() => undefined, fetch, clock), {});
});
