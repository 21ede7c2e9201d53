//! Typed errors: I/O, corrupt data (with where), unsupported features.

use std::fmt;
use std::path::PathBuf;

use crate::layout::Pgid;

/// Errors returned by this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system failed, or refused an output path, or the input
    /// changed while read, or the operation was cancelled.
    #[error(transparent)]
    Os(#[from] etcdsnap_io::Error),
    /// The file's bytes break a rule of the format.
    #[error(transparent)]
    Corrupt(#[from] Box<Corruption>),
    /// The builder was called out of order or with data bbolt cannot hold.
    #[error(transparent)]
    Build(#[from] Box<BuildFailure>),
    /// A surgery (`bbolt surgery` equivalent) refused: its result would be unsafe.
    #[error(transparent)]
    Surgery(#[from] Box<SurgeryFailure>),
}

impl From<SurgeryFailure> for Error {
    fn from(f: SurgeryFailure) -> Self {
        Self::Surgery(Box::new(f))
    }
}

impl From<BuildFailure> for Error {
    fn from(f: BuildFailure) -> Self {
        Self::Build(Box::new(f))
    }
}

/// Why the builder refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The page size is not a power of two from 1 KiB to 64 KiB.
    PageSize(u32),
    /// Keys and bucket names must not be empty.
    EmptyKey,
    /// A key longer than bbolt's `MaxKeySize` (32768).
    KeyTooLarge {
        /// Its length.
        len: usize,
    },
    /// A value longer than bbolt's `MaxValueSize`.
    ValueTooLarge {
        /// Its length.
        len: usize,
    },
    /// A key not greater than the previous key of its bucket.
    KeyOrder,
    /// The root bucket holds only buckets (as in bbolt's Tx API).
    ValueInRoot,
    /// `close_bucket` without an open bucket.
    NoOpenBucket,
    /// The builder was already finished.
    Finished,
    /// The tree would be deeper than readers accept.
    TreeTooDeep,
    /// A streamed build was not fed the calls its plan was (its meta pages, already
    /// written, would be wrong), or `finish_streamed` was called on a seek-back builder.
    LayoutChanged,
    /// A patch was asked to delete a key its bucket lacks.
    AbsentKey,
    /// A page would need more than 65534 elements or pages.
    PageTooLarge {
        /// Its size in bytes.
        size: usize,
    },
}

impl BuildError {
    /// Attaches the bucket path and key the error concerns.
    pub fn at(self, bucket: Vec<Vec<u8>>, key: &[u8]) -> BuildFailure {
        BuildFailure { bucket, key: key.to_vec(), kind: self }
    }
}

/// A builder error with the bucket and key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFailure {
    /// Path of the bucket being written.
    pub bucket: Vec<Vec<u8>>,
    /// The key being written (empty when none).
    pub key: Vec<u8>,
    /// What was wrong.
    pub kind: BuildError,
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildError::PageSize(s) => write!(f, "page size {s} is not a power of two from 1024 to 65536")?,
            BuildError::EmptyKey => write!(f, "empty key")?,
            BuildError::KeyTooLarge { len } => write!(f, "key of {len} bytes exceeds 32768")?,
            BuildError::ValueTooLarge { len } => write!(f, "value of {len} bytes is too large")?,
            BuildError::KeyOrder => write!(f, "key not greater than the previous key")?,
            BuildError::ValueInRoot => write!(f, "the root bucket holds only buckets")?,
            BuildError::NoOpenBucket => write!(f, "no bucket is open")?,
            BuildError::Finished => write!(f, "builder already finished")?,
            BuildError::LayoutChanged => write!(f, "the build differs from its plan")?,
            BuildError::TreeTooDeep => write!(f, "tree deeper than {} levels", crate::layout::MAX_DEPTH)?,
            BuildError::PageTooLarge { size } => write!(f, "page of {size} bytes is too large")?,
            BuildError::AbsentKey => write!(f, "key to delete is not in the bucket")?,
        }
        if !self.bucket.is_empty() {
            let path: Vec<String> = self.bucket.iter().map(|b| display_bytes(b)).collect();
            write!(f, " (bucket {}", path.join("/"))?;
            if !self.key.is_empty() {
                write!(f, ", key {}", display_bytes(&self.key))?;
            }
            write!(f, ")")?;
        } else if !self.key.is_empty() {
            write!(f, " (key {})", display_bytes(&self.key))?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildFailure {}

impl Error {
    /// A stable kebab-case name of the error's kind: `io`, `not-regular-file`,
    /// `build`, a surgery refusal's [`Refusal::code`], or the corruption's [`CorruptKind::code`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::Os(etcdsnap_io::Error::Io { .. }) => "io",
            Self::Os(etcdsnap_io::Error::NotRegularFile { .. }) => "not-regular-file",
            Self::Os(etcdsnap_io::Error::Output { .. }) => "output",
            Self::Os(etcdsnap_io::Error::Interrupted { .. }) => "interrupted",
            Self::Os(etcdsnap_io::Error::InputChanged { .. }) => "input-changed",
            Self::Os(_) => "os",
            Self::Corrupt(c) => c.kind.code(),
            Self::Build(_) => "build",
            Self::Surgery(f) => f.kind.code(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> etcdsnap_io::ErrorKind {
        match self {
            Self::Os(e) => e.kind(),
            Self::Corrupt(_) => etcdsnap_io::ErrorKind::Corrupt,
            Self::Build(f) => match f.kind {
                // The output writer failed, or a plan and its build disagree.
                BuildError::LayoutChanged | BuildError::Finished | BuildError::NoOpenBucket => {
                    etcdsnap_io::ErrorKind::Internal
                }
                _ => etcdsnap_io::ErrorKind::Refused,
            },
            Self::Surgery(_) => etcdsnap_io::ErrorKind::Refused,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Os(etcdsnap_io::Error::io(path, source))
    }

    /// An interruption by `signal` (see [`etcdsnap_io::Cancel`]).
    pub fn interrupted(signal: usize) -> Self {
        Self::Os(etcdsnap_io::Error::Interrupted { signal })
    }

    /// The corruption, when this is a corrupt-data error.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Self::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Self::Corrupt(Box::new(c))
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One broken rule of the format, and where it was found.
///
/// `check` returns a list of these; readers return the first one as an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The page where the problem is, when it concerns one.
    pub page: Option<Pgid>,
    /// Absolute byte offset in the file, when known.
    pub offset: Option<u64>,
    /// The bucket path (outermost first) being read, when known.
    pub bucket: Vec<Vec<u8>>,
    /// The key concerned, when known.
    pub key: Option<Vec<u8>>,
    /// What is wrong.
    pub kind: CorruptKind,
}

impl Corruption {
    /// A corruption of `kind` at no particular place.
    pub fn new(kind: CorruptKind) -> Self {
        Self { page: None, offset: None, bucket: Vec::new(), key: None, kind }
    }

    /// A corruption of `kind` on page `page`.
    pub fn on_page(page: Pgid, kind: CorruptKind) -> Self {
        Self { page: Some(page), ..Self::new(kind) }
    }

    /// Adds the absolute file offset.
    #[must_use]
    pub fn at_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Adds the bucket path, unless one is already set.
    #[must_use]
    pub fn in_bucket(mut self, path: &[Vec<u8>]) -> Self {
        if self.bucket.is_empty() {
            self.bucket = path.to_vec();
        }
        self
    }

    /// Adds the key, unless one is already set.
    #[must_use]
    pub fn with_key(mut self, key: &[u8]) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_vec());
        }
        self
    }
}

/// Formats bytes as text when printable ASCII, else as hex, like bbolt's `auto` format.
pub fn display_bytes(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) {
        String::from_utf8_lossy(b).into_owned()
    } else {
        let mut s = String::with_capacity(b.len().saturating_mul(2).saturating_add(2));
        s.push_str("0x");
        for c in b {
            s.push_str(&format!("{c:02x}"));
        }
        s
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.page {
            write!(f, "page {p}: ")?;
        }
        write!(f, "{}", self.kind)?;
        let mut extra = Vec::new();
        if !self.bucket.is_empty() {
            let path: Vec<String> = self.bucket.iter().map(|b| display_bytes(b)).collect();
            extra.push(format!("bucket {}", path.join("/")));
        }
        if let Some(k) = &self.key {
            extra.push(format!("key {}", display_bytes(k)));
        }
        if let Some(o) = self.offset {
            extra.push(format!("offset {o}"));
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Corruption {}

/// Why a meta page is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaFault {
    /// The page is cut off by the end of the file.
    Truncated,
    /// `magic` is not 0xED0CDAED (bbolt: "invalid database").
    Magic(u32),
    /// `version` is not 2 (bbolt: "version mismatch").
    Version(u32),
    /// The FNV-1a checksum does not match (bbolt: "checksum error").
    Checksum {
        /// Value stored in the page.
        stored: u64,
        /// Value computed over the meta fields.
        computed: u64,
    },
    /// `pageSize` is outside 1 KiB ..= 64 KiB.
    PageSize(u32),
}

impl fmt::Display for MetaFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "truncated"),
            Self::Magic(m) => write!(f, "invalid database (magic {m:#010x})"),
            Self::Version(v) => write!(f, "version mismatch (version {v})"),
            Self::Checksum { stored, computed } => {
                write!(f, "checksum error (stored {stored:#018x}, computed {computed:#018x})")
            }
            Self::PageSize(s) => write!(f, "page size {s} out of range 1024..=65536"),
        }
    }
}

/// The kinds of corruption the reader and checker report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// The file is too short to hold two meta pages.
    FileTooSmall {
        /// File length in bytes.
        len: u64,
    },
    /// A meta page fails validation.
    InvalidMeta {
        /// Which meta page (0 or 1).
        meta: u8,
        /// Why.
        fault: MetaFault,
    },
    /// Neither meta page is valid.
    NoValidMeta,
    /// A field of the selected meta points outside the file's pages.
    MetaField {
        /// Field name as in bbolt (`root`, `freelist`, `pgid`).
        field: &'static str,
        /// Its value.
        value: u64,
        /// The high-water mark (`pgid`).
        hwm: u64,
    },
    /// The file ends before `pgid × pageSize`.
    FileShorterThanHwm {
        /// File length in bytes.
        len: u64,
        /// `pgid × pageSize`.
        needed: u64,
    },
    /// A page id at or beyond the high-water mark (bbolt: "out of bounds").
    OutOfBounds {
        /// The high-water mark.
        hwm: Pgid,
    },
    /// A page lies (partly) beyond the end of the file.
    PastEndOfFile,
    /// The page header's id is not the page's position (bbolt's `fastCheck`).
    IdMismatch {
        /// The id the page claims.
        found: Pgid,
    },
    /// The page's overflow run reaches the high-water mark.
    OverflowPastHwm {
        /// The page's `overflow`.
        overflow: u32,
        /// The high-water mark.
        hwm: Pgid,
    },
    /// A page has a type that does not fit where it is referenced (bbolt: "invalid type").
    InvalidType {
        /// The page's flags.
        flags: u16,
        /// What the reference expected.
        expected: &'static str,
    },
    /// The element array runs past the end of the page.
    ElementsPastPage {
        /// Element count.
        count: u16,
    },
    /// An element's key or value runs past the end of the page.
    ElementPastPage {
        /// Element index.
        index: usize,
    },
    /// A branch page with no elements.
    EmptyBranch,
    /// A non-root leaf with no elements (bbolt removes them when rebalancing).
    EmptyLeaf,
    /// A key that is empty (bbolt refuses empty keys).
    EmptyKey {
        /// Element index.
        index: usize,
    },
    /// Keys within a page do not strictly increase.
    KeyOrder {
        /// Element index of the offending key.
        index: usize,
    },
    /// A key is smaller than the branch key that leads to its page.
    KeyBelowAncestor {
        /// Element index of the offending key.
        index: usize,
    },
    /// A key is not smaller than the next branch key in an ancestor.
    KeyNotBelowNext {
        /// Element index of the offending key.
        index: usize,
    },
    /// The tree is deeper than the depth cap, which also catches cycles.
    TooDeep {
        /// The cap.
        max: usize,
    },
    /// Buckets are nested deeper than the cap.
    BucketsTooDeep {
        /// The cap.
        max: usize,
    },
    /// Trees of nested buckets are deeper, all levels added up, than the checker's
    /// walk descends (a crafted file; no real one comes near).
    WalkTooDeep {
        /// The cap.
        max: usize,
    },
    /// Iteration reached more pages than the file holds: a page is referenced twice.
    Revisited,
    /// A page reached by two references (bbolt: "multiple references").
    MultipleReferences,
    /// A page is both in the tree and on the freelist (bbolt: "reachable freed").
    ReachableFreed,
    /// A page listed twice on the freelist (bbolt: "already freed").
    AlreadyFreed,
    /// A page neither in the tree nor free (bbolt: "unreachable unfreed").
    UnreachableUnfreed,
    /// A freelist id that cannot be free (a meta page, or at/beyond the HWM).
    FreelistIdOutOfRange {
        /// The id.
        id: Pgid,
    },
    /// A bucket entry whose value is shorter than a bucket header.
    BucketValueTooShort {
        /// The value's length.
        len: usize,
    },
    /// A bucket header's root page outside `[2, pgid)`.
    BucketRootOutOfRange {
        /// The root.
        root: Pgid,
    },
    /// An inline bucket whose page image is malformed.
    BadInlineBucket {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value was read as a bucket but is not one, or the reverse.
    NotABucket,
    /// An element's key/value data is not where bbolt's writer puts it: right after
    /// the element array for element 0, right after the previous element's data for
    /// the others (offsets relative to the page start).
    ElementLayout {
        /// Element index.
        index: usize,
        /// Page offset the element's `pos` points at.
        found: u64,
        /// Page offset bbolt's writer would have used.
        expected: u64,
    },
    /// A page's `overflow` is not the number of extra pages its elements need.
    OverflowMismatch {
        /// The page's `overflow`.
        overflow: u32,
        /// Bytes the header, element array and data use.
        used: u64,
        /// The `overflow` bbolt allocates for that size.
        expected: u64,
    },
    /// A leaf element's `flags` has bits set other than `bucketLeafFlag`.
    UnknownElementFlags {
        /// Element index.
        index: usize,
        /// The element's flags.
        flags: u32,
    },
    /// A branch key differs from the first key of the child page it points to.
    BranchKeyMismatch {
        /// Element index in the branch.
        index: usize,
        /// The child page.
        child: Pgid,
    },
    /// An inline bucket's page image has a page id other than 0.
    InlinePageId {
        /// The id found.
        found: Pgid,
    },
    /// An inline bucket's page image is longer or shorter than its elements.
    InlineSizeMismatch {
        /// Bytes of the image (the bucket value after its header).
        len: u64,
        /// Bytes its header, element array and data use.
        used: u64,
    },
    /// A bucket with a root page whose value is longer than the bucket header
    /// (bbolt stores exactly the header; only inline buckets carry more).
    PagedBucketValueLength {
        /// The value's length.
        len: u64,
    },
    /// A meta page's header field is not what bbolt writes.
    MetaHeader {
        /// Which meta page (0 or 1).
        meta: u8,
        /// Field name as in bbolt (`id`, `count`, `overflow`).
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

impl CorruptKind {
    /// A stable name for the kind, for machine-readable output (`--json`):
    /// the variant's name in kebab case, e.g. `element-layout`. Never changes once
    /// published; new kinds get new names.
    pub fn code(&self) -> &'static str {
        match self {
            Self::FileTooSmall { .. } => "file-too-small",
            Self::InvalidMeta { .. } => "invalid-meta",
            Self::NoValidMeta => "no-valid-meta",
            Self::MetaField { .. } => "meta-field",
            Self::FileShorterThanHwm { .. } => "file-shorter-than-hwm",
            Self::OutOfBounds { .. } => "out-of-bounds",
            Self::PastEndOfFile => "past-end-of-file",
            Self::IdMismatch { .. } => "id-mismatch",
            Self::OverflowPastHwm { .. } => "overflow-past-hwm",
            Self::InvalidType { .. } => "invalid-type",
            Self::ElementsPastPage { .. } => "elements-past-page",
            Self::ElementPastPage { .. } => "element-past-page",
            Self::EmptyBranch => "empty-branch",
            Self::EmptyLeaf => "empty-leaf",
            Self::EmptyKey { .. } => "empty-key",
            Self::KeyOrder { .. } => "key-order",
            Self::KeyBelowAncestor { .. } => "key-below-ancestor",
            Self::KeyNotBelowNext { .. } => "key-not-below-next",
            Self::TooDeep { .. } => "too-deep",
            Self::BucketsTooDeep { .. } => "buckets-too-deep",
            Self::WalkTooDeep { .. } => "walk-too-deep",
            Self::Revisited => "revisited",
            Self::MultipleReferences => "multiple-references",
            Self::ReachableFreed => "reachable-freed",
            Self::AlreadyFreed => "already-freed",
            Self::UnreachableUnfreed => "unreachable-unfreed",
            Self::FreelistIdOutOfRange { .. } => "freelist-id-out-of-range",
            Self::BucketValueTooShort { .. } => "bucket-value-too-short",
            Self::BucketRootOutOfRange { .. } => "bucket-root-out-of-range",
            Self::BadInlineBucket { .. } => "bad-inline-bucket",
            Self::NotABucket => "not-a-bucket",
            Self::ElementLayout { .. } => "element-layout",
            Self::OverflowMismatch { .. } => "overflow-mismatch",
            Self::UnknownElementFlags { .. } => "unknown-element-flags",
            Self::BranchKeyMismatch { .. } => "branch-key-mismatch",
            Self::InlinePageId { .. } => "inline-page-id",
            Self::InlineSizeMismatch { .. } => "inline-size-mismatch",
            Self::MetaHeader { .. } => "meta-header",
            Self::PagedBucketValueLength { .. } => "paged-bucket-value-length",
        }
    }
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileTooSmall { len } => write!(f, "file of {len} bytes is too small for a bbolt database"),
            Self::InvalidMeta { meta, fault } => write!(f, "meta {meta}: {fault}"),
            Self::NoValidMeta => write!(f, "no valid meta page"),
            Self::MetaField { field, value, hwm } => {
                write!(f, "meta {field} {value} out of range (HWM {hwm})")
            }
            Self::FileShorterThanHwm { len, needed } => {
                write!(f, "file is {len} bytes, shorter than pgid × pageSize = {needed}")
            }
            Self::OutOfBounds { hwm } => write!(f, "out of bounds: {hwm}"),
            Self::PastEndOfFile => write!(f, "past the end of the file"),
            Self::IdMismatch { found } => write!(f, "page self identifies as {found}"),
            Self::OverflowPastHwm { overflow, hwm } => {
                write!(f, "overflow {overflow} reaches past HWM {hwm}")
            }
            Self::InvalidType { flags, expected } => {
                write!(f, "invalid type: {} (expected {expected})", crate::layout::PageType::from_flags(*flags).name())
            }
            Self::ElementsPastPage { count } => write!(f, "{count} elements do not fit in the page"),
            Self::ElementPastPage { index } => write!(f, "element {index}: key or value past the end of the page"),
            Self::EmptyBranch => write!(f, "branch page has no elements"),
            Self::EmptyLeaf => write!(f, "non-root leaf page has no elements"),
            Self::EmptyKey { index } => write!(f, "key[{index}] is empty"),
            Self::KeyOrder { index } => write!(f, "key[{index}] needs to be > than previous element"),
            Self::KeyBelowAncestor { index } => {
                write!(f, "key[{index}] needs to be >= the key in the ancestor")
            }
            Self::KeyNotBelowNext { index } => {
                write!(f, "key[{index}] needs to be < than key of the next element in ancestor")
            }
            Self::TooDeep { max } => write!(f, "tree deeper than {max} levels (cycle?)"),
            Self::BucketsTooDeep { max } => write!(f, "buckets nested deeper than {max} levels"),
            Self::WalkTooDeep { max } => write!(f, "nested bucket trees deeper than {max} levels in all"),
            Self::Revisited => write!(f, "page reached twice while iterating (cycle or shared page)"),
            Self::MultipleReferences => write!(f, "multiple references"),
            Self::ReachableFreed => write!(f, "reachable freed"),
            Self::AlreadyFreed => write!(f, "already freed"),
            Self::UnreachableUnfreed => write!(f, "unreachable unfreed"),
            Self::FreelistIdOutOfRange { id } => write!(f, "freelist holds id {id} outside [2, HWM)"),
            Self::BucketValueTooShort { len } => {
                write!(f, "bucket value of {len} bytes is shorter than a bucket header")
            }
            Self::BucketRootOutOfRange { root } => write!(f, "bucket root {root} out of range"),
            Self::BadInlineBucket { reason } => write!(f, "inline bucket: {reason}"),
            Self::NotABucket => write!(f, "not a bucket"),
            Self::ElementLayout { index, found, expected } => {
                write!(f, "element {index}: data at page offset {found}, bbolt writes it at {expected}")
            }
            Self::OverflowMismatch { overflow, used, expected } => {
                write!(f, "overflow {overflow}, but the elements use {used} bytes (overflow {expected})")
            }
            Self::UnknownElementFlags { index, flags } => {
                write!(f, "element {index}: flags {flags:#x} has bits bbolt never sets")
            }
            Self::BranchKeyMismatch { index, child } => {
                write!(f, "key[{index}] differs from the first key of its child page {child}")
            }
            Self::InlinePageId { found } => write!(f, "inline bucket: page id {found}, bbolt writes 0"),
            Self::InlineSizeMismatch { len, used } => {
                write!(f, "inline bucket: page image of {len} bytes, its elements use {used}")
            }
            Self::PagedBucketValueLength { len } => {
                write!(f, "bucket with a root page has a {len}-byte value, bbolt writes the 16-byte header only")
            }
            Self::MetaHeader { meta, field, value } => {
                write!(f, "meta {meta}: page header {field} is {value}")
            }
        }
    }
}

/// Why a surgery refused to write its output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The meta page a revert would make active does not validate.
    InvalidMeta {
        /// Which meta page (0 or 1).
        meta: u8,
        /// Why it is invalid.
        fault: MetaFault,
    },
    /// Elements can be cleared only in branch and leaf pages.
    NotANode {
        /// The page's flags.
        flags: u16,
    },
    /// The element range does not fit the page (bbolt's rules: `from` in
    /// `[0, count)`, `to` in `(from, count]`, `None` meaning the end).
    IndexRange {
        /// First element to remove.
        from: usize,
        /// One past the last element to remove; `None` = to the end.
        to: Option<usize>,
        /// Elements in the page.
        count: usize,
    },
    /// The clear would leave a branch page with no elements, which bbolt's
    /// cursors read past (clear the branch's parent element instead).
    EmptyBranch,
    /// The tree is damaged here, so which pages are in use is not known: a
    /// freelist built from it could free live pages (bbolt's `freepages`
    /// panics on the same damage).
    DamagedTree {
        /// The damage found.
        problem: Box<Corruption>,
    },
    /// A count read from the file is at its type's limit (a txid of 2^64 − 1).
    Overflow {
        /// The field (`txid`, `pgid`).
        field: &'static str,
    },
}

impl Refusal {
    /// A stable kebab-case name of the refusal, for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidMeta { .. } => "surgery-invalid-meta",
            Self::NotANode { .. } => "surgery-not-a-node",
            Self::IndexRange { .. } => "surgery-index-range",
            Self::EmptyBranch => "surgery-empty-branch",
            Self::DamagedTree { .. } => "surgery-damaged-tree",
            Self::Overflow { .. } => "surgery-overflow",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMeta { meta, fault } => {
                write!(f, "meta {meta} is not valid ({fault}); reverting to it would leave no valid meta page")
            }
            Self::NotANode { flags } => {
                write!(f, "can't clear elements in a {} page", crate::layout::PageType::from_flags(*flags).name())
            }
            Self::IndexRange { from, to, count } => match *to {
                _ if from >= count => write!(f, "the start index ({from}) is out of range [0, {count})"),
                Some(t) if t > *count => write!(f, "the end index ({t}) is out of range [0, {count}]"),
                Some(t) if t == *from => write!(f, "the start index ({from}) is equal to the end index ({t})"),
                Some(t) => write!(f, "the start index ({from}) is bigger than the end index ({t})"),
                None => write!(f, "the range [{from}, end) does not fit {count} elements"),
            },
            Self::EmptyBranch => write!(f, "clearing every element would leave an empty branch page"),
            Self::DamagedTree { problem } => write!(
                f,
                "the tree is damaged ({problem}): the pages in use are not known, so no freelist is \
                 written (repair the tree first, e.g. with clear-page-elements or salvage)"
            ),
            Self::Overflow { field } => write!(f, "meta {field} is at its limit"),
        }
    }
}

/// A surgery's refusal and where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurgeryFailure {
    /// The page concerned, when one is.
    pub page: Option<Pgid>,
    /// Its byte offset in the file, when known.
    pub offset: Option<u64>,
    /// Why.
    pub kind: Refusal,
}

impl SurgeryFailure {
    /// A refusal concerning page `page` of a file with pages of `page_size` bytes.
    pub fn on_page(page: Pgid, page_size: usize, kind: Refusal) -> Self {
        Self { page: Some(page), offset: page.checked_mul(page_size as u64), kind }
    }
}

impl fmt::Display for SurgeryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.page {
            write!(f, "page {p}: ")?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(o) = self.offset {
            write!(f, " (offset {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SurgeryFailure {}
