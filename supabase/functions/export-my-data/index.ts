// Entry point of the `export-my-data` edge function (deployed with JWT verification on: the
// gateway refuses calls without a valid token before this code runs). SUPABASE_URL and
// SUPABASE_ANON_KEY are provided by the platform; EXPORT_INLINE_MAX_BYTES and
// EXPORT_URL_TTL_SECONDS are optional (see ../README.md).

import { denoEnv } from "../_shared/supabase.ts";
import { DEFAULT_INLINE_MAX_BYTES, DEFAULT_URL_TTL_SECONDS, makeHandler } from "./handler.ts";
import { SupabaseExportSource, SupabaseExportStorage } from "./supabase_ports.ts";

export function numberSetting(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (!text) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

if (import.meta.main) {
  Deno.serve(makeHandler({
    source: new SupabaseExportSource(denoEnv),
    storage: new SupabaseExportStorage(denoEnv),
    now: () => new Date(),
    inlineMaxBytes: numberSetting("EXPORT_INLINE_MAX_BYTES", DEFAULT_INLINE_MAX_BYTES),
    urlTtlSeconds: numberSetting("EXPORT_URL_TTL_SECONDS", DEFAULT_URL_TTL_SECONDS),
  }));
}
