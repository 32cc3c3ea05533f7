// export-my-data against the embedded Postgres: export_my_data() runs as the caller behind
// the token verified here, and a stored export is written as the caller under the exports
// bucket's policies, as Supabase Storage would write it.

import { base64UrlDecode, verifyHs256 } from "../_shared/jwt.ts";
import { asCaller, type Sql } from "../_shared/postgres.ts";
import { assert, assertEquals } from "../_shared/testing.ts";
import {
  accessToken,
  createUser,
  deleteUsers,
  integration,
  JWT_SECRET,
  testDatabase,
} from "../_shared/testing_db.ts";
import { makeHandler } from "./handler.ts";
import { LocalExportStorage, PostgresExportSource } from "./postgres_ports.ts";

function handlerFor(sql: Sql, dir: string, inlineMaxBytes: number) {
  const now = () => new Date();
  return makeHandler({
    source: new PostgresExportSource(sql, JWT_SECRET, now),
    storage: new LocalExportStorage(sql, JWT_SECRET, now, dir, "http://127.0.0.1:54329"),
    now,
    inlineMaxBytes,
    urlTtlSeconds: 600,
  });
}

function post(jwt: string | null): Request {
  return new Request("http://functions.local/export-my-data", {
    method: "POST",
    headers: jwt ? { authorization: `Bearer ${jwt}` } : {},
    body: "{}",
  });
}

async function visibleExports(sql: Sql, user: string): Promise<string[]> {
  const rows = await asCaller(sql, {
    role: "authenticated",
    claims: { sub: user, role: "authenticated" },
  }, (tx) => tx`select name from storage.objects where bucket_id = 'exports' order by name`);
  return rows.map((r) => String(r.name));
}

Deno.test({
  name: "integration: export-my-data answers the caller's own data, inline or by signed URL",
  ...integration,
  async fn() {
    const sql = testDatabase();
    const dir = await Deno.makeTempDir({ prefix: "export-my-data-" });
    const alice = await createUser(sql, "alice");
    const bob = await createUser(sql, "bob");
    try {
      await sql`insert into public.devices (user_id, device_id, platform) values
                (${alice}, 'alice-phone', 'ios'), (${bob}, 'bob-phone', 'android')`;
      const aliceJwt = await accessToken(alice);

      const inline = await handlerFor(sql, dir, 1_000_000)(post(aliceJwt));
      assertEquals(inline.status, 200);
      const document = await inline.json();
      assertEquals(
        [document.user_id, document.devices.map((d: { device_id: string }) => d.device_id)],
        [alice, ["alice-phone"]],
      );

      // Tokens the database must not accept.
      const refusals: [string | null, string][] = [
        [null, "missing bearer token (Authorization: Bearer <jwt>)"],
        [await accessToken(alice, { secret: "x".repeat(40) }), "invalid JWT signature"],
        [await accessToken(alice, { expiresIn: -10 }), "JWT expired"],
        [
          await accessToken(null, { role: "anon" }),
          "not signed in: permission denied for function export_my_data",
        ],
      ];
      for (const [jwt, error] of refusals) {
        const response = await handlerFor(sql, dir, 1_000_000)(post(jwt));
        assertEquals([response.status, await response.json()], [401, { error }], error);
      }

      // Above the threshold: stored in Alice's folder, owned by her, behind a signed URL.
      const large = handlerFor(sql, dir, 10);
      const stored = await (await large(post(aliceJwt))).json();
      assert(stored.path.startsWith(`${alice}/export-`), `stored at ${stored.path}`);
      const file = JSON.parse(await Deno.readTextFile(`${dir}/exports/${stored.path}`));
      assertEquals([file.user_id, file.devices.length], [alice, 1]);
      const token = new URL(stored.signed_url).searchParams.get("token")!;
      assert(await verifyHs256(token, JWT_SECRET), "the URL is signed with the project secret");
      const claims = JSON.parse(new TextDecoder().decode(base64UrlDecode(token.split(".")[1])));
      assertEquals([claims.url, claims.exp - claims.iat], [`exports/${stored.path}`, 600]);
      const [row] = await sql`select owner::text from storage.objects
                              where bucket_id = 'exports' and name = ${stored.path}`;
      assertEquals(row.owner, alice);

      // A new export replaces the earlier one; only Alice sees hers.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const replaced = await (await large(post(aliceJwt))).json();
      assertEquals(await visibleExports(sql, alice), [replaced.path]);
      assertEquals(await visibleExports(sql, bob), []);
      assert(
        !(await Deno.stat(`${dir}/exports/${stored.path}`).then(() => true, () => false)),
        "the earlier file is gone",
      );

      // Bob cannot plant a file in Alice's folder: the insert policy refuses it.
      const storage = new LocalExportStorage(sql, JWT_SECRET, () => new Date(), dir, "http://x");
      let refused = "";
      await storage.store(await accessToken(bob), `${alice}/planted.json`, new Uint8Array(2), 60)
        .catch((error) => refused = (error as { code?: string }).code ?? "");
      assertEquals(refused, "42501");
      assertEquals(await visibleExports(sql, alice), [replaced.path]);
    } finally {
      await sql.begin(async (tx) => {
        await tx`select set_config('storage.allow_delete_query', 'true', true)`;
        await tx`delete from storage.objects where bucket_id = 'exports'
                 and owner = any(${[alice, bob]}::uuid[])`;
      });
      await deleteUsers(sql, [alice, bob]);
      await sql.end();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
