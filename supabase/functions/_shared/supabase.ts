// Supabase clients for functions: the service role (bypasses RLS; only for work no user
// could do) and a client that acts as the caller (their JWT forwarded, so PostgREST and
// Storage apply the caller's policies). SUPABASE_URL, SUPABASE_ANON_KEY and
// SUPABASE_SERVICE_ROLE_KEY are provided to every deployed function by the platform.

import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2";

export type Env = (name: string) => string | undefined;

export const denoEnv: Env = (name) => Deno.env.get(name);

/** The value of a required setting; a missing one is a deployment error, said plainly. */
export function required(env: Env, name: string): string {
  const value = env(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const NO_SESSION = { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false };

/** The HTTP port: `fetch` unless a test records the requests. */
export type Fetch = typeof fetch;

export function serviceClient(env: Env = denoEnv, fetch?: Fetch): SupabaseClient {
  return createClient(required(env, "SUPABASE_URL"), required(env, "SUPABASE_SERVICE_ROLE_KEY"), {
    auth: NO_SESSION,
    global: fetch ? { fetch } : {},
  });
}

export function callerClient(jwt: string, env: Env = denoEnv, fetch?: Fetch): SupabaseClient {
  return createClient(required(env, "SUPABASE_URL"), required(env, "SUPABASE_ANON_KEY"), {
    auth: NO_SESSION,
    global: { headers: { authorization: `Bearer ${jwt}` }, ...(fetch ? { fetch } : {}) },
  });
}
