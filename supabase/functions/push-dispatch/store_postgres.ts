// The push store over a direct Postgres connection, as the service role (PostgREST's request
// settings replayed): what `pysync functions serve` and the integration test use, so grants,
// triggers and the ledger's unique key act exactly as behind the API.

import { asCaller, SERVICE_ROLE, type Sql } from "../_shared/postgres.ts";
import type { Delivery, Device, Notification, PushStore } from "./ports.ts";

export class PostgresPushStore implements PushStore {
  constructor(private readonly sql: Sql) {}

  async notification(id: string): Promise<Notification | null> {
    const rows = await asCaller(
      this.sql,
      SERVICE_ROLE,
      (tx) =>
        tx`select id, recipient_id, type, category, title, body, data
         from public.notifications where id = ${id}`,
    );
    return (rows[0] as unknown as Notification) ?? null;
  }

  async categoryEnabled(userId: string, category: string): Promise<boolean> {
    const rows = await asCaller(
      this.sql,
      SERVICE_ROLE,
      (tx) =>
        tx`select enabled from public.notification_preferences
         where user_id = ${userId} and category = ${category}`,
    );
    return rows.length === 0 ? true : Boolean(rows[0].enabled);
  }

  async devices(userId: string): Promise<Device[]> {
    const rows = await asCaller(
      this.sql,
      SERVICE_ROLE,
      (tx) =>
        tx`select id, platform, push_token from public.devices
         where user_id = ${userId} and push_token is not null order by id`,
    );
    return rows as unknown as Device[];
  }

  async claim(notificationId: string, deviceId: string): Promise<boolean> {
    const rows = await asCaller(
      this.sql,
      SERVICE_ROLE,
      (tx) =>
        tx`insert into public.push_deliveries (notification_id, device_id)
         values (${notificationId}, ${deviceId})
         on conflict (notification_id, device_id) do nothing returning id`,
    );
    return rows.length === 1;
  }

  async record(notificationId: string, deviceId: string, delivery: Delivery): Promise<void> {
    await asCaller(
      this.sql,
      SERVICE_ROLE,
      (tx) =>
        "sentAt" in delivery
          ? tx`update public.push_deliveries set sent_at = ${delivery.sentAt}
             where notification_id = ${notificationId} and device_id = ${deviceId}`
          : tx`update public.push_deliveries
             set failed_at = ${delivery.failedAt}, failure_reason = ${delivery.reason}
             where notification_id = ${notificationId} and device_id = ${deviceId}`,
    );
  }

  async pruneToken(deviceId: string, token: string): Promise<void> {
    await asCaller(this.sql, SERVICE_ROLE, (tx) =>
      tx`update public.devices set push_token = null
         where id = ${deviceId} and push_token = ${token}`);
  }
}
