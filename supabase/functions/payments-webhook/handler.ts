// The payments webhook: Stripe tells us about payment intents, refunds and disputes, and this
// function records them with the service role key. It is the only writer of payments,
// refunds and disputes: clients can read theirs but never write (see policies/payments.sql).
//
// Every write is an upsert on the provider's id, so Stripe's retries (it redelivers until it
// gets a 2xx) never duplicate a row.

import type { SupabaseClient } from "npm:@supabase/supabase-js@2";
import { json, requireMethod, serveJson } from "../_shared/http.ts";
import { SignatureError, verifySignature } from "./stripe_signature.ts";

export interface HandlerOptions {
  supabase: SupabaseClient;
  webhookSecret: string;
  /** Seconds since the epoch; injectable so tests control the signature's age. */
  now?: () => number;
}

// deno-lint-ignore no-explicit-any
type StripeObject = Record<string, any>;

interface StripeEvent {
  id: string;
  type: string;
  data: { object: StripeObject };
}

class RecordError extends Error {}

function check(result: { error: { message: string } | null }, what: string): void {
  if (result.error) throw new RecordError(`${what}: ${result.error.message}`);
}

async function recordIntent(db: SupabaseClient, intent: StripeObject, status: string) {
  const metadata = intent.metadata ?? {};
  const row = {
    provider: "stripe",
    provider_intent_id: intent.id,
    payer_id: metadata.payer_id ?? null,
    session_id: metadata.session_id ?? null,
    course_id: metadata.course_id ?? null,
    amount_minor: intent.amount_received || intent.amount,
    currency: String(intent.currency).toUpperCase(),
    status,
  };
  check(
    await db.from("payments").upsert(row, { onConflict: "provider_intent_id" }),
    `payment ${intent.id}`,
  );
}

async function paymentId(db: SupabaseClient, intentId: string): Promise<string> {
  const found = await db.from("payments").select("id").eq("provider_intent_id", intentId)
    .maybeSingle();
  check(found, `payment ${intentId}`);
  if (!found.data) throw new RecordError(`no payment for intent ${intentId} yet`);
  return found.data.id as string;
}

async function recordRefunds(db: SupabaseClient, charge: StripeObject) {
  const payment = await paymentId(db, charge.payment_intent);
  const refunds = (charge.refunds?.data ?? []).map((refund: StripeObject) => ({
    payment_id: payment,
    provider_refund_id: refund.id,
    amount_minor: refund.amount,
    reason: refund.reason ?? "",
    status: refund.status === "succeeded"
      ? "succeeded"
      : refund.status === "failed"
      ? "failed"
      : refund.status === "canceled"
      ? "cancelled"
      : "pending",
  }));
  if (refunds.length) {
    check(
      await db.from("refunds").upsert(refunds, { onConflict: "provider_refund_id" }),
      `refunds of ${charge.id}`,
    );
  }
  if (charge.refunded) {
    check(
      await db.from("payments").update({ status: "refunded" }).eq("id", payment),
      `payment ${payment}`,
    );
  }
}

async function recordDispute(db: SupabaseClient, dispute: StripeObject) {
  const row = {
    payment_id: await paymentId(db, dispute.payment_intent),
    provider_dispute_id: dispute.id,
    reason: dispute.reason ?? "",
    status: dispute.status === "won" ? "won" : dispute.status === "lost" ? "lost" : "open",
  };
  check(
    await db.from("disputes").upsert(row, { onConflict: "provider_dispute_id" }),
    `dispute ${dispute.id}`,
  );
}

export function makeHandler(options: HandlerOptions): (request: Request) => Promise<Response> {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  return serveJson(async (request: Request): Promise<Response> => {
    requireMethod(request, "POST");
    const body = await request.text();
    try {
      await verifySignature(
        body,
        request.headers.get("stripe-signature"),
        options.webhookSecret,
        now(),
      );
    } catch (error) {
      if (error instanceof SignatureError) return json(400, { error: error.message });
      throw error;
    }
    let event: StripeEvent;
    try {
      event = JSON.parse(body);
    } catch {
      return json(400, { error: "body is not JSON" });
    }
    const object = event.data?.object ?? {};
    const db = options.supabase;
    try {
      switch (event.type) {
        case "payment_intent.succeeded":
          await recordIntent(db, object, "succeeded");
          break;
        case "payment_intent.payment_failed":
          await recordIntent(db, object, "failed");
          break;
        case "charge.refunded":
        case "charge.refund.updated":
          await recordRefunds(db, object);
          break;
        case "charge.dispute.created":
        case "charge.dispute.updated":
        case "charge.dispute.closed":
          await recordDispute(db, object);
          break;
        default:
          // Acknowledge what we do not handle, or Stripe retries it for days.
          return json(200, { received: true, ignored: event.type });
      }
    } catch (error) {
      if (error instanceof RecordError) {
        // 500 makes Stripe retry later (e.g. a refund that arrives before its payment).
        return json(500, { error: error.message });
      }
      throw error;
    }
    return json(200, { received: true, type: event.type });
  });
}
