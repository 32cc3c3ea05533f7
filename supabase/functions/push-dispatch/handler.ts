// The HTTP face of push dispatch. Called by the database webhook on notifications (insert)
// with the service role key as its bearer token; also accepts {"notification_id": "..."} for
// a manual re-run. Anyone else is refused: the function acts as the service role.

import { bearerToken, timingSafeEqual } from "../_shared/auth.ts";
import { HttpError, json, readJsonObject, requireMethod, serveJson } from "../_shared/http.ts";
import { dispatch, type DispatchPorts } from "./dispatch.ts";

export interface HandlerOptions extends DispatchPorts {
  /** The bearer token callers must present: the project's service role key. */
  serviceRoleKey: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Target = { id: string } | { ignore: string };

/** The notification to send, from a webhook payload or a manual request; 400 if neither. */
export function targetOf(body: Record<string, unknown>): Target {
  if ("record" in body || "type" in body) {
    const { type, table, record } = body as { type?: unknown; table?: unknown; record?: unknown };
    if (table !== undefined && table !== "notifications") {
      throw new HttpError(400, `webhook for table ${String(table)}; expected notifications`);
    }
    if (type !== "INSERT") return { ignore: `${String(type)} events are not dispatched` };
    const id = (record as { id?: unknown } | null)?.id;
    if (typeof id !== "string" || !UUID.test(id)) {
      throw new HttpError(400, "record.id must be the notification's uuid");
    }
    return { id };
  }
  const id = body.notification_id;
  if (typeof id !== "string" || !UUID.test(id)) {
    throw new HttpError(400, "notification_id (a uuid) is required");
  }
  return { id };
}

export function makeHandler(options: HandlerOptions): (request: Request) => Promise<Response> {
  return serveJson(async (request) => {
    requireMethod(request, "POST");
    if (!timingSafeEqual(bearerToken(request), options.serviceRoleKey)) {
      throw new HttpError(401, "push-dispatch is for the database webhook (service role) only");
    }
    const target = targetOf(await readJsonObject(request));
    if ("ignore" in target) return json(200, { skipped: target.ignore });
    const summary = await dispatch(target.id, options);
    if (!summary) throw new HttpError(404, `no notification ${target.id}`);
    return json(200, summary);
  });
}
