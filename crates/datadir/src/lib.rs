//! etcd data dirs offline: the operations that need both halves of a
//! member's state, the bbolt db (`etcdsnap-mvcc`) and the WAL
//! (`etcdsnap-wal`), which know nothing of each other.
//!
//! - [`input`]: what a path given as input is (snapshot, raw db, data dir,
//!   member dir, WAL dir or segment, `.snap` file, …), recognised by layout
//!   and content, and which db file a directory stands for.
//! - [`replay`]: the db's `consistent_index`, below which etcd does not
//!   replay the WAL — what a WAL rewrite must not shift.
//! - [`restore`]: a snapshot turned into every new member's data dir, as
//!   `etcdutl snapshot restore` writes it, with the rewrite's rules in the
//!   same pass.
//! - [`rewrite`]: a whole data dir rewritten with one set of rules, committed
//!   atomically.

mod error;
pub mod input;
pub mod replay;
pub mod restore;
pub mod rewrite;

pub use error::{DataDirError, Result};
