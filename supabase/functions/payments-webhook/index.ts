// Entry point of the `payments-webhook` edge function (deploy with
// `supabase functions deploy payments-webhook --no-verify-jwt`: Stripe signs its requests
// instead of sending a Supabase JWT). Needs STRIPE_WEBHOOK_SECRET as a function secret;
// SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are provided by the platform.

import { denoEnv, required, serviceClient } from "../_shared/supabase.ts";
import { makeHandler } from "./handler.ts";

if (import.meta.main) {
  Deno.serve(makeHandler({
    supabase: serviceClient(),
    webhookSecret: required(denoEnv, "STRIPE_WEBHOOK_SECRET"),
  }));
}
