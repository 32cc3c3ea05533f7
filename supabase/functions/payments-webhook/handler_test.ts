// Request-level tests: the webhook's signature checks, and the exact PostgREST requests it
// makes for each Stripe event (captured by a fetch that answers as PostgREST would).

import { createClient } from "npm:@supabase/supabase-js@2";
import { makeHandler } from "./handler.ts";
import { sign, verifySignature } from "./stripe_signature.ts";

const SECRET = "whsec_test_secret";
const NOW = 1_790_000_000;
const PAYMENT_ID = "9a000000-0000-4000-8000-000000000001";

interface Captured {
  method: string;
  path: string;
  query: Record<string, string>;
  prefer: string | null;
  body: unknown;
}

function assertEquals(actual: unknown, expected: unknown, message = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message}\nexpected ${e}\n     got ${a}`);
}

/** A Supabase client whose fetch records every request and answers like PostgREST. */
function recordingClient(options: { paymentExists?: boolean; failWith?: string } = {}) {
  const captured: Captured[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const text = request.method === "GET" ? "" : await request.text();
    captured.push({
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      prefer: request.headers.get("prefer"),
      body: text ? JSON.parse(text) : null,
    });
    if (options.failWith) {
      return new Response(JSON.stringify({ code: "23514", message: options.failWith }), {
        status: 400,
        headers: { "content-type": "application/json" },
      });
    }
    if (request.method === "GET") {
      const rows = options.paymentExists === false ? [] : [{ id: PAYMENT_ID }];
      const single = (request.headers.get("accept") ?? "").includes("vnd.pgrst.object");
      if (single && rows.length === 0) {
        return new Response(
          JSON.stringify({ code: "PGRST116", message: "no rows", details: "0 rows" }),
          { status: 406, headers: { "content-type": "application/json" } },
        );
      }
      return new Response(JSON.stringify(single ? rows[0] : rows), {
        status: 200,
        headers: { "content-type": "application/json" },
      });
    }
    return new Response(null, { status: 201 });
  };
  const supabase = createClient("http://project.local", "service-role-key", {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { fetch },
  });
  return { supabase, captured };
}

async function signedRequest(event: unknown, secret = SECRET, at = NOW): Promise<Request> {
  const body = JSON.stringify(event);
  const signature = await sign(secret, at, body);
  return new Request("http://functions.local/payments-webhook", {
    method: "POST",
    headers: { "stripe-signature": `t=${at},v1=${signature}` },
    body,
  });
}

const intent = {
  id: "pi_123",
  amount: 4500,
  amount_received: 4500,
  currency: "eur",
  metadata: {
    payer_id: "c0000000-0000-4000-8000-000000000001",
    course_id: "d0000000-0000-4000-8000-000000000001",
  },
};

Deno.test("a valid signature verifies; tampering, a wrong secret or an old one do not", async () => {
  const body = '{"id":"evt_1"}';
  const header = `t=${NOW},v1=${await sign(SECRET, NOW, body)}`;
  await verifySignature(body, header, SECRET, NOW);
  for (
    const [what, args] of [
      ["tampered body", ['{"id":"evt_2"}', header, SECRET, NOW]],
      ["wrong secret", [body, header, "whsec_other", NOW]],
      ["too old", [body, header, SECRET, NOW + 301]],
      ["missing header", [body, null, SECRET, NOW]],
      ["malformed header", [body, "v1=abc", SECRET, NOW]],
    ] as const
  ) {
    let refused = false;
    try {
      await verifySignature(...(args as [string, string | null, string, number]));
    } catch {
      refused = true;
    }
    if (!refused) throw new Error(`${what} was accepted`);
  }
});

Deno.test("an unsigned request is refused before anything is written", async () => {
  const { supabase, captured } = recordingClient();
  const handler = makeHandler({ supabase, webhookSecret: SECRET, now: () => NOW });
  const request = new Request("http://functions.local/payments-webhook", {
    method: "POST",
    body: JSON.stringify({ type: "payment_intent.succeeded", data: { object: intent } }),
  });
  const response = await handler(request);
  assertEquals(response.status, 400);
  assertEquals(captured, []);
});

Deno.test("a succeeded payment intent is upserted on its provider id", async () => {
  const { supabase, captured } = recordingClient();
  const handler = makeHandler({ supabase, webhookSecret: SECRET, now: () => NOW });
  const event = { id: "evt_1", type: "payment_intent.succeeded", data: { object: intent } };
  const response = await handler(await signedRequest(event));
  assertEquals(response.status, 200);
  assertEquals(captured.length, 1);
  const [call] = captured;
  assertEquals([call.method, call.path, call.query.on_conflict], [
    "POST",
    "/rest/v1/payments",
    "provider_intent_id",
  ]);
  if (!call.prefer?.includes("resolution=merge-duplicates")) {
    throw new Error(`upsert must merge duplicates, Prefer was ${call.prefer}`);
  }
  assertEquals(call.body, {
    provider: "stripe",
    provider_intent_id: "pi_123",
    payer_id: intent.metadata.payer_id,
    session_id: null,
    course_id: intent.metadata.course_id,
    amount_minor: 4500,
    currency: "EUR",
    status: "succeeded",
  });
});

Deno.test("a full refund records the refund and marks the payment refunded", async () => {
  const { supabase, captured } = recordingClient();
  const handler = makeHandler({ supabase, webhookSecret: SECRET, now: () => NOW });
  const charge = {
    id: "ch_1",
    payment_intent: "pi_123",
    refunded: true,
    refunds: { data: [{ id: "re_1", amount: 4500, status: "succeeded", reason: "requested" }] },
  };
  const response = await handler(
    await signedRequest({ id: "evt_2", type: "charge.refunded", data: { object: charge } }),
  );
  assertEquals(response.status, 200);
  assertEquals(captured.map((c) => [c.method, c.path]), [
    ["GET", "/rest/v1/payments"],
    ["POST", "/rest/v1/refunds"],
    ["PATCH", "/rest/v1/payments"],
  ]);
  assertEquals(captured[0].query.provider_intent_id, "eq.pi_123");
  assertEquals(captured[1].query.on_conflict, "provider_refund_id");
  assertEquals(captured[1].body, [{
    payment_id: PAYMENT_ID,
    provider_refund_id: "re_1",
    amount_minor: 4500,
    reason: "requested",
    status: "succeeded",
  }]);
  assertEquals([captured[2].query.id, captured[2].body], [`eq.${PAYMENT_ID}`, {
    status: "refunded",
  }]);
});

Deno.test("a refund before its payment is answered 500 so Stripe retries", async () => {
  const { supabase, captured } = recordingClient({ paymentExists: false });
  const handler = makeHandler({ supabase, webhookSecret: SECRET, now: () => NOW });
  const charge = { id: "ch_1", payment_intent: "pi_404", refunded: false, refunds: { data: [] } };
  const response = await handler(
    await signedRequest({ id: "evt_3", type: "charge.refunded", data: { object: charge } }),
  );
  assertEquals(response.status, 500);
  assertEquals(captured.map((c) => c.method), ["GET"]);
});

Deno.test("a closed dispute records its outcome", async () => {
  const { supabase, captured } = recordingClient();
  const handler = makeHandler({ supabase, webhookSecret: SECRET, now: () => NOW });
  const dispute = { id: "dp_1", payment_intent: "pi_123", reason: "fraudulent", status: "lost" };
  const response = await handler(
    await signedRequest({ id: "evt_4", type: "charge.dispute.closed", data: { object: dispute } }),
  );
  assertEquals(response.status, 200);
  assertEquals(captured[1].body, {
    payment_id: PAYMENT_ID,
    provider_dispute_id: "dp_1",
    reason: "fraudulent",
    status: "lost",
  });
});

Deno.test("a database refusal is reported, and unknown events are acknowledged", async () => {
  const failing = recordingClient({ failWith: "amount_minor must be positive" });
  const handler = makeHandler({
    supabase: failing.supabase,
    webhookSecret: SECRET,
    now: () => NOW,
  });
  const refused = await handler(
    await signedRequest({ id: "e", type: "payment_intent.succeeded", data: { object: intent } }),
  );
  assertEquals(refused.status, 500);
  assertEquals((await refused.json()).error, "payment pi_123: amount_minor must be positive");

  const quiet = recordingClient();
  const ignoring = makeHandler({ supabase: quiet.supabase, webhookSecret: SECRET, now: () => NOW });
  const response = await ignoring(
    await signedRequest({ id: "e2", type: "customer.created", data: { object: {} } }),
  );
  assertEquals([response.status, quiet.captured.length], [200, 0]);
});

Deno.test({
  name: "live: the function is deployed and refuses unsigned requests",
  ignore: !Deno.env.get("SUPABASE_URL") || !Deno.env.get("SUPABASE_ANON_KEY"),
  async fn() {
    const response = await fetch(`${Deno.env.get("SUPABASE_URL")}/functions/v1/payments-webhook`, {
      method: "POST",
      headers: { authorization: `Bearer ${Deno.env.get("SUPABASE_ANON_KEY")}` },
      body: "{}",
    });
    assertEquals(response.status, 400);
    await response.body?.cancel();
  },
});

Deno.test("wrong methods, unsigned JSON and failures inside get JSON errors, no traces", async () => {
  const { supabase, captured } = recordingClient();
  const handler = makeHandler({ supabase, webhookSecret: SECRET, now: () => NOW });
  const get = await handler(new Request("http://functions.local/payments-webhook"));
  assertEquals([get.status, await get.json()], [405, { error: "POST only" }]);
  const body = "{not json";
  const signed = new Request("http://functions.local/payments-webhook", {
    method: "POST",
    headers: { "stripe-signature": `t=${NOW},v1=${await sign(SECRET, NOW, body)}` },
    body,
  });
  const malformed = await handler(signed);
  assertEquals([malformed.status, await malformed.json()], [400, { error: "body is not JSON" }]);
  assertEquals(captured, []);

  const broken = makeHandler({
    // A bug inside (here: the client itself throws) must not leak its message or stack.
    supabase: {
      from() {
        throw new Error("secret detail at handler.ts:42");
      },
    } as unknown as ReturnType<typeof createClient>,
    webhookSecret: SECRET,
    now: () => NOW,
  });
  const original = console.error;
  console.error = () => {};
  try {
    const failed = await broken(
      await signedRequest({ id: "e", type: "payment_intent.succeeded", data: { object: intent } }),
    );
    assertEquals([failed.status, await failed.json()], [500, { error: "internal error" }]);
  } finally {
    console.error = original;
  }
});
