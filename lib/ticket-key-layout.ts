/**
 * One TLS session ticket key as Node (`tls.Server#getTicketKeys()`), OpenSSL's ticket-key
 * callback and the engine's setTicketKeys() lay it out: 16-byte key name | 16-byte HMAC secret |
 * 16-byte AES key. The one definition; the engine, TicketKeyRing and `tls-session store` read it.
 */
export const TICKET_KEY_PART_BYTES = 16;
export const TICKET_KEY_BYTES = 3 * TICKET_KEY_PART_BYTES;

export const ticketKeyName = (material: Buffer): Buffer => material.subarray(0, TICKET_KEY_PART_BYTES);
export const ticketKeyHmacSecret = (material: Buffer): Buffer => material.subarray(TICKET_KEY_PART_BYTES, 2 * TICKET_KEY_PART_BYTES);
export const ticketKeyAesKey = (material: Buffer): Buffer => material.subarray(2 * TICKET_KEY_PART_BYTES, TICKET_KEY_BYTES);
