//! Tidemark: migrates MySQL-family databases: schema, full data, and binlog changes.
//!
//! The data path, folder by folder:
//!
//! * [`endpoint`]: connection endpoints, TLS, `${ENV}` (below the task file and sinks).
//! * [`config`]: the task file.
//! * [`precheck`]: checks before anything is written; produces the plan.
//! * [`source`]: readers (catalog, snapshot chunks, the binlog).
//! * [`transform`]: object selection, renames, filters.
//! * [`sink`]: destinations behind one seam (MySQL, RocketMQ): the registry of kinds and
//!   the traits `task` drives them through.
//! * [`state`]: the embedded state store (task state, chunk checkpoints).
//! * [`task`]: where a task decides its next phase; the parallel full copy; the
//!   incremental apply.
//! * [`verify`]: proving the destination equals the source (chunk checksums, repair).
//!
//! The `tidemark` binary (`main.rs`) is a thin command line over these.

pub mod config;
pub mod connect;
pub mod endpoint;
pub mod errors;
pub mod inspect;
pub mod precheck;
pub mod progress;
pub mod quickstart;
pub mod retrying;
pub mod sink;
pub mod source;
pub mod state;
pub mod task;
pub mod transform;
pub mod verify;
