// Entry point of the `payments-webhook` edge function (deploy with
// `supabase functions deploy payments-webhook --no-verify-jwt`: Stripe signs its requests
// instead of sending a Supabase JWT). Needs STRIPE_WEBHOOK_SECRET as a function secret;
// SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are provided by the platform.

import { createClient } from "npm:@supabase/supabase-js@2";
import { makeHandler } from "./handler.ts";

function required(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

if (import.meta.main) {
  const supabase = createClient(required("SUPABASE_URL"), required("SUPABASE_SERVICE_ROLE_KEY"), {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  Deno.serve(makeHandler({ supabase, webhookSecret: required("STRIPE_WEBHOOK_SECRET") }));
}
