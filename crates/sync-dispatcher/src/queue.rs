//! The sync job queue lives in the service kit (the ingestor queues jobs
//! too: a fetch of an incomplete reservation).

pub use service_kit::sync_queue::*;
