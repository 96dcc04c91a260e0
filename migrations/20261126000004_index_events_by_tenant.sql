-- One tenant's log in safe order (the audit API's `GET /v1/tenants/{tenant_id}/events` and its
-- live tail): without this index, reading a small tenant's events walks every tenant's events
-- after the cursor. Leading with tenant_id also keeps every key tenant-first (design brief §8).
CREATE INDEX events_tenant_safe_order_idx ON events (tenant_id, tx_id, position);
