// push-dispatch against the embedded Postgres (the push store over a Postgres driver, as the
// service role) and the fake providers: the ledger's unique key, the devices' policies and
// the preference column grant act for real.

import { asCaller, type Sql } from "../_shared/postgres.ts";
import { assert, assertEquals, FakeClock } from "../_shared/testing.ts";
import { createUser, deleteUsers, integration, testDatabase } from "../_shared/testing_db.ts";
import { providersFromEnv } from "./config.ts";
import { FakePush } from "./fakes.ts";
import { makeHandler } from "./handler.ts";
import { DEFAULT_RETRY } from "./retry.ts";
import { PostgresPushStore } from "./store_postgres.ts";

const KEY = "service-role-key";

function asUser<T>(sql: Sql, user: string, work: Parameters<typeof asCaller<T>>[2]) {
  return asCaller(sql, {
    role: "authenticated",
    claims: { sub: user, role: "authenticated", aud: "authenticated" },
  }, work);
}

async function notify(sql: Sql, user: string, type = "new_message"): Promise<string> {
  const [row] = await sql`insert into public.notifications (recipient_id, type, title, body)
                          values (${user}, ${type}, 'Sam', 'See you at 5?') returning id`;
  return row.id as string;
}

function invoke(handler: (r: Request) => Promise<Response>, id: string) {
  return handler(
    new Request("http://functions.local/push-dispatch", {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}` },
      body: JSON.stringify({
        type: "INSERT",
        table: "notifications",
        schema: "public",
        record: { id },
        old_record: null,
      }),
    }),
  );
}

Deno.test({
  name: "integration: push-dispatch records, prunes, never sends twice, respects preferences",
  ...integration,
  async fn() {
    const sql = testDatabase();
    const fake = await FakePush.create();
    const env = fake.env();
    const clock = new FakeClock();
    const handler = makeHandler({
      store: new PostgresPushStore(sql),
      providers: providersFromEnv((name) => env[name], fake.fetch, clock),
      clock,
      retry: DEFAULT_RETRY,
      serviceRoleKey: KEY,
    });
    const alice = await createUser(sql, "alice");
    const bob = await createUser(sql, "bob");
    const tag = alice.slice(0, 8);
    try {
      // Devices are registered by their owners, through the devices policies.
      await asUser(
        sql,
        alice,
        (tx) =>
          tx`insert into public.devices (user_id, device_id, platform, push_token) values
           (${alice}, 'phone', 'ios', ${`apns-${tag}`}),
           (${alice}, 'tablet', 'android', ${`fcm-stale-${tag}`}),
           (${alice}, 'laptop', 'web', ${`fcm-web-${tag}`}),
           (${alice}, 'old-phone', 'android', null)`,
      );
      await asUser(
        sql,
        bob,
        (tx) =>
          tx`insert into public.devices (user_id, device_id, platform, push_token)
           values (${bob}, 'phone', 'android', ${`fcm-bob-${tag}`})`,
      );
      fake.script = {
        [`fcm-stale-${tag}`]: ["invalid"],
        [`apns-${tag}`]: ["rate_limited", "success"],
      };

      const first = await notify(sql, alice);
      const response = await invoke(handler, first);
      assertEquals(response.status, 200);
      const rows = await sql`
        select d.device_id, pd.sent_at is not null as sent, pd.failure_reason, d.push_token
        from public.push_deliveries pd join public.devices d on d.id = pd.device_id
        where pd.notification_id = ${first} order by d.device_id`;
      assertEquals(rows.map((r) => [r.device_id, r.sent, r.failure_reason, r.push_token]), [
        ["laptop", true, null, `fcm-web-${tag}`],
        ["phone", true, null, `apns-${tag}`],
        ["tablet", false, "fcm 404 UNREGISTERED: Requested entity was not found.", null],
      ]);
      assertEquals(clock.slept, [7000], "the 429 was retried after its Retry-After");
      assert(!fake.calls.some((c) => c.token === `fcm-bob-${tag}`), "bob's phone got nothing");

      // Invoked again (a webhook retry): the ledger holds, nothing is sent twice.
      const sends = fake.calls.length;
      const again = await (await invoke(handler, first)).json();
      assertEquals(again.deliveries.map((d: { status: string }) => d.status), [
        "already_claimed",
        "already_claimed",
      ]);
      assertEquals(fake.calls.length, sends);

      // Two invocations racing for a new notification: each device still gets one push.
      const second = await notify(sql, alice, "session_confirmed");
      await Promise.all([invoke(handler, second), invoke(handler, second)]);
      const pushed = fake.calls.slice(sends).filter((c) => c.service !== "oauth");
      assertEquals(pushed.map((c) => c.token).sort(), [`apns-${tag}`, `fcm-web-${tag}`]);
      const [{ count }] = await sql`select count(*)::int as count from public.push_deliveries
                                    where notification_id = ${second}`;
      assertEquals(count, 2);

      // Alice turns messages off (her own preference row, the one column she may write).
      await asUser(sql, alice, (tx) =>
        tx`update public.notification_preferences set enabled = false
           where user_id = ${alice} and category = 'messages'`);
      const muted = await notify(sql, alice);
      const before = fake.calls.length;
      const skipped = await (await invoke(handler, muted)).json();
      assertEquals(skipped.skipped, "category messages is turned off");
      const [{ none }] = await sql`select count(*)::int as none from public.push_deliveries
                                   where notification_id = ${muted}`;
      assertEquals([none, fake.calls.length], [0, before]);
      // Other categories still go out.
      const graded = await (await invoke(handler, await notify(sql, alice, "submission_graded")))
        .json();
      assertEquals(graded.deliveries.map((d: { status: string }) => d.status), ["sent", "sent"]);
    } finally {
      await deleteUsers(sql, [alice, bob]);
      await sql.end();
    }
  },
});
