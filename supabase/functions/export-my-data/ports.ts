// What the export needs from outside: the caller's export document (read as the caller, so
// their policies decide) and somewhere private to put a large one, with a URL that expires.

export interface ExportSource {
  /** `export_my_data()` as the holder of `jwt`; HttpError 401 when the token is refused. */
  exportAs(jwt: string): Promise<Record<string, unknown>>;
}

export interface StoredExport {
  bucket: string;
  path: string;
  signedUrl: string;
}

export interface ExportStorage {
  /**
   * Stores `bytes` at `path` in the exports bucket as the holder of `jwt` (the bucket's
   * policies allow a user their own folder only), replacing the user's earlier exports, and
   * returns a URL that expires after `ttlSeconds`.
   */
  store(jwt: string, path: string, bytes: Uint8Array, ttlSeconds: number): Promise<StoredExport>;
}

export const EXPORTS_BUCKET = "exports";
