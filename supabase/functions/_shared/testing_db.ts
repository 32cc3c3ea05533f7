// The embedded database for the integration tests: PYSYNC_TEST_DB_URL names a database with
// the project's migrations and policies (`pysync functions test` and tests/test_edge_functions.py
// make a throw-away one); without it the integration tests are reported as ignored.

import { hmacKey, signJwt } from "./jwt.ts";
import { connect, type Sql } from "./postgres.ts";

export const TEST_DB_URL = Deno.env.get("PYSYNC_TEST_DB_URL") ?? "";
/** The local stack's well-known JWT secret, unless the runner says otherwise. */
export const JWT_SECRET = Deno.env.get("SUPABASE_JWT_SECRET") ??
  "super-secret-jwt-token-with-at-least-32-characters-long";

export const integration = { ignore: !TEST_DB_URL, sanitizeResources: false, sanitizeOps: false };

export function testDatabase(): Sql {
  return connect(TEST_DB_URL);
}

/** A new user (auth.users; the profile and preferences follow by trigger); returns its id. */
export async function createUser(sql: Sql, label: string): Promise<string> {
  const id = crypto.randomUUID();
  await sql`insert into auth.users (id, aud, role, email)
            values (${id}, 'authenticated', 'authenticated', ${`${label}.${
    id.slice(0, 8)
  }@example.com`})`;
  return id;
}

export async function deleteUsers(sql: Sql, ids: string[]): Promise<void> {
  await sql`delete from auth.users where id = any(${ids}::uuid[])`;
}

/** An access token as GoTrue signs one. */
export async function accessToken(
  userId: string | null,
  options: { role?: string; secret?: string; expiresIn?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    role: options.role ?? "authenticated",
    iat: now,
    exp: now + (options.expiresIn ?? 3600),
  };
  if (userId) Object.assign(claims, { sub: userId, aud: "authenticated" });
  return await signJwt("HS256", await hmacKey(options.secret ?? JWT_SECRET), claims);
}
