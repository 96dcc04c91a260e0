//! The event store against a real PostgreSQL: one file per property.

mod smoke;
