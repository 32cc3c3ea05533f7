// Entry point of the `push-dispatch` edge function (see ../README.md for the database
// webhook that calls it and its secrets). SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are
// provided by the platform.

import { denoEnv, required, serviceClient } from "../_shared/supabase.ts";
import { providersFromEnv, retryFromEnv } from "./config.ts";
import { makeHandler } from "./handler.ts";
import { systemClock } from "./ports.ts";
import { SupabasePushStore } from "./store_supabase.ts";

if (import.meta.main) {
  Deno.serve(makeHandler({
    store: new SupabasePushStore(serviceClient()),
    providers: providersFromEnv(denoEnv, fetch, systemClock),
    clock: systemClock,
    retry: retryFromEnv(denoEnv),
    serviceRoleKey: required(denoEnv, "SUPABASE_SERVICE_ROLE_KEY"),
  }));
}
