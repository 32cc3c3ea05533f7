// CORS for functions that browsers call directly (the web app's "download my data"): the
// headers supabase-js sends, from any origin (authorization is the bearer token, never a
// cookie, so a foreign origin gains nothing).

export const corsHeaders: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type",
  "access-control-allow-methods": "POST, OPTIONS",
};
