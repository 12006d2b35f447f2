//! Tidemark: migrates MySQL-family databases: schema, full data, and binlog changes.
//!
//! The data path, folder by folder:
//!
//! * [`config`]: the task file.
//! * [`precheck`]: checks before anything is written; produces the plan.
//! * [`source`]: readers (catalog, snapshot chunks, the binlog).
//! * [`transform`]: object selection, renames, filters.
//! * [`sink`]: writers (MySQL schema and rows).
//! * [`state`]: the embedded state store (task state, chunk checkpoints).
//! * [`task`]: where a task decides its next phase; the parallel full copy; the
//!   incremental apply.
//! * [`verify`]: proving the destination equals the source (chunk checksums, repair).
//!
//! The `tidemark` binary (`main.rs`) is a thin command line over these.

pub mod config;
pub mod connect;
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
