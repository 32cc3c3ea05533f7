// The push store over PostgREST with the service role key: what the deployed function uses.

import type { SupabaseClient } from "npm:@supabase/supabase-js@2";
import type { Delivery, Device, Notification, PushStore } from "./ports.ts";

function check<T>(result: { data: T; error: { message: string } | null }, what: string): T {
  if (result.error) throw new Error(`${what}: ${result.error.message}`);
  return result.data;
}

export class SupabasePushStore implements PushStore {
  constructor(private readonly db: SupabaseClient) {}

  async notification(id: string): Promise<Notification | null> {
    return check(
      await this.db.from("notifications")
        .select("id, recipient_id, type, category, title, body, data")
        .eq("id", id)
        .maybeSingle(),
      `notification ${id}`,
    ) as Notification | null;
  }

  async categoryEnabled(userId: string, category: string): Promise<boolean> {
    const row = check(
      await this.db.from("notification_preferences").select("enabled")
        .eq("user_id", userId).eq("category", category).maybeSingle(),
      `preference ${category}`,
    ) as { enabled: boolean } | null;
    return row?.enabled ?? true;
  }

  async devices(userId: string): Promise<Device[]> {
    return check(
      await this.db.from("devices").select("id, platform, push_token")
        .eq("user_id", userId).not("push_token", "is", null).order("id"),
      "devices",
    ) as Device[];
  }

  async claim(notificationId: string, deviceId: string): Promise<boolean> {
    const rows = check(
      await this.db.from("push_deliveries")
        .upsert({ notification_id: notificationId, device_id: deviceId }, {
          onConflict: "notification_id,device_id",
          ignoreDuplicates: true,
        })
        .select("id"),
      "claim delivery",
    ) as unknown[] | null;
    return (rows ?? []).length === 1;
  }

  async record(notificationId: string, deviceId: string, delivery: Delivery): Promise<void> {
    const values = "sentAt" in delivery
      ? { sent_at: delivery.sentAt.toISOString() }
      : { failed_at: delivery.failedAt.toISOString(), failure_reason: delivery.reason };
    check(
      await this.db.from("push_deliveries").update(values)
        .eq("notification_id", notificationId).eq("device_id", deviceId),
      "record delivery",
    );
  }

  async pruneToken(deviceId: string, token: string): Promise<void> {
    check(
      await this.db.from("devices").update({ push_token: null })
        .eq("id", deviceId).eq("push_token", token),
      "prune token",
    );
  }
}
