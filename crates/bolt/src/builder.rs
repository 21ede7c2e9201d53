//! A streaming, bottom-up bbolt writer.
//!
//! Keys arrive in strictly increasing order per bucket. Each bucket keeps one
//! open leaf and one open page per branch level: a page is written as soon as
//! the next element would not fit, and its first key and page id go up to the
//! next level. Closing a bucket flushes its levels bottom-up and yields the
//! root, which becomes the value of the bucket's entry in its parent, so
//! nested buckets are written before the parent page that points at them.
//! Memory is bounded by (bucket nesting) × (tree height) pages, plus the
//! largest single value, whatever the number of keys.
//!
//! Layout of the file: meta 0, meta 1, an empty freelist page (id 2), then the
//! tree pages in the order they fill. Both metas point at the same root with
//! txids T and T−1, as bbolt's `Tx.WriteTo` writes them.

use std::io::{Seek, SeekFrom, Write};

use crate::error::{BuildError, Error, Result};
use crate::layout::{
    BucketHeader, PageHeader, Pgid, BRANCH_PAGE_FLAG, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, FREELIST_PAGE_FLAG,
    LEAF_PAGE_FLAG, MAGIC, MAX_KEY_SIZE, MAX_VALUE_SIZE, PAGE_HEADER_SIZE, VERSION,
};
use crate::meta::{meta_page, Meta};

/// Default fill percent: pages are packed full.
///
/// bbolt's `compact` uses 1.0 and etcd's defrag 0.9. We pack full because what we
/// write is an etcd backend image: its `key` bucket only ever grows at its right
/// edge (revisions are appended), and old pages only lose entries to compaction,
/// so free room left in every page would never be used and would cost 10 % of
/// the file and of every scan.
pub const DEFAULT_FILL_PERCENT: f64 = 1.0;

/// Page id of the (empty) freelist page.
pub const FREELIST_PGID: Pgid = 2;

const ELEMENT_SIZE: usize = 16;

/// Options of a [`Builder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Page size in bytes (1 KiB ..= 64 KiB).
    pub page_size: u32,
    /// Fraction of a page filled before a new page starts, clamped to 0.1 ..= 1.0 as in bbolt.
    pub fill_percent: f64,
    /// Transaction id of meta 0 (meta 1 gets one less); at least 1.
    pub txid: u64,
    /// Write small leaf-only buckets inline in their parent, as bbolt does.
    pub inline_buckets: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self { page_size: 4096, fill_percent: DEFAULT_FILL_PERCENT, txid: 1, inline_buckets: true }
    }
}

/// Where a tree of buckets is written, in key order: a [`Builder`], or
/// anything that wraps one to watch or change what goes through it.
pub trait Sink {
    /// Opens nested bucket `name` (with its `NextSequence` counter) in the current bucket.
    fn create_bucket(&mut self, name: &[u8], sequence: u64) -> Result<()>;
    /// Appends `key` = `value` to the current bucket; keys must strictly increase.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Closes the current bucket.
    fn close_bucket(&mut self) -> Result<()>;
}

impl<W: Write> Sink for Builder<W> {
    fn create_bucket(&mut self, name: &[u8], sequence: u64) -> Result<()> {
        Builder::create_bucket(self, name, sequence)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Builder::put(self, key, value)
    }

    fn close_bucket(&mut self) -> Result<()> {
        Builder::close_bucket(self)
    }
}

/// What a finished build wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildSummary {
    /// The meta written to page 0 (page 1 has `txid − 1`).
    pub meta: Meta,
    /// Bytes written (`pgid × pageSize`).
    pub bytes: u64,
    /// Buckets written, the root bucket excluded.
    pub buckets: u64,
    /// Key/value pairs written.
    pub keys: u64,
}

/// One element of a page being filled.
#[derive(Debug, Clone, Copy)]
struct Elem {
    flags: u32,
    ksize: u32,
    vsize: u32,
    child: Pgid,
}

/// Elements of one page being filled; keys and values (leaves) or keys (branches)
/// in `data`. When planning (sizes only), `data` stays empty and `data_len` counts.
#[derive(Debug, Default)]
pub(crate) struct PageBuf {
    elems: Vec<Elem>,
    data: Vec<u8>,
    data_len: usize,
    sizes_only: bool,
}

/// Zeros that pad a written page up to a whole number of pages.
static ZERO_PAD: [u8; 4096] = [0; 4096];

/// Stand-in key bytes for planning, where only key lengths matter.
static ZERO_KEY: [u8; MAX_KEY_SIZE] = [0; MAX_KEY_SIZE];

impl PageBuf {
    /// Serialized size: header, element array and data (bbolt's `node.size`).
    pub(crate) fn size(&self) -> usize {
        ELEMENT_SIZE.saturating_mul(self.elems.len()).saturating_add(PAGE_HEADER_SIZE).saturating_add(self.data_len)
    }

    fn first_key(&self) -> &[u8] {
        let Some(e) = self.elems.first() else { return &[] };
        let bytes = if self.sizes_only { &ZERO_KEY[..] } else { &self.data[..] };
        bytes.get(..e.ksize as usize).unwrap_or(&[])
    }

    fn clear(&mut self) {
        self.elems.clear();
        self.data.clear();
        self.data_len = 0;
    }

    /// Adds a leaf element (`child` 0) or a branch element (`value` empty).
    pub(crate) fn push(&mut self, flags: u32, key: &[u8], value: &[u8], child: Pgid) {
        // Lengths were checked against bbolt's limits, which fit in u32.
        let (ksize, vsize) =
            (u32::try_from(key.len()).unwrap_or(u32::MAX), u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.elems.push(Elem { flags, ksize, vsize, child });
        self.data_len = self.data_len.saturating_add(key.len()).saturating_add(value.len());
        if !self.sizes_only {
            self.data.extend_from_slice(key);
            self.data.extend_from_slice(value);
        }
    }

    /// A planning page's leaf element of a value known by its length.
    fn push_sized(&mut self, key: &[u8], value_len: usize) {
        debug_assert!(self.sizes_only);
        let (ksize, vsize) =
            (u32::try_from(key.len()).unwrap_or(u32::MAX), u32::try_from(value_len).unwrap_or(u32::MAX));
        self.elems.push(Elem { flags: 0, ksize, vsize, child: 0 });
        self.data_len = self.data_len.saturating_add(key.len()).saturating_add(value_len);
    }

    /// Writes the page image (header, elements, data) into `out`; with `pad`, up to
    /// a whole number of pages. Returns the overflow count.
    pub(crate) fn serialize(
        &self,
        id: Pgid,
        page_flag: u16,
        page_size: usize,
        pad: bool,
        out: &mut Vec<u8>,
    ) -> Result<u32> {
        let (overflow, padded) = self.serialize_head(id, page_flag, page_size, out)?;
        out.extend_from_slice(&self.data);
        if pad {
            out.resize(padded, 0);
        }
        Ok(overflow)
    }

    /// Writes the page header and element array into `out` (the keys and
    /// values follow them). Returns the overflow count and the padded size.
    pub(crate) fn serialize_head(
        &self,
        id: Pgid,
        page_flag: u16,
        page_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(u32, usize)> {
        let size = self.size();
        let pages = size.div_ceil(page_size).max(1);
        let too_large = || Error::from(BuildError::PageTooLarge { size }.at(Vec::new(), self.first_key()));
        let overflow = u32::try_from(pages.saturating_sub(1)).map_err(|_| too_large())?;
        let count = u16::try_from(self.elems.len()).ok().filter(|&c| c < u16::MAX).ok_or_else(too_large)?;
        let padded = pages.checked_mul(page_size).ok_or_else(too_large)?;
        out.clear();
        out.reserve(size.saturating_sub(self.data.len()));
        let mut h = [0u8; PAGE_HEADER_SIZE];
        PageHeader { id, flags: page_flag, count, overflow }.write_to(&mut h);
        out.extend_from_slice(&h);
        // `size` did not overflow, so neither do these offsets, which stay below it.
        let elem_off = |i: usize| ELEMENT_SIZE.saturating_mul(i).saturating_add(PAGE_HEADER_SIZE);
        let mut data_off = elem_off(self.elems.len());
        for (i, e) in self.elems.iter().enumerate() {
            let pos = u32::try_from(data_off.saturating_sub(elem_off(i))).map_err(|_| too_large())?;
            if page_flag == BRANCH_PAGE_FLAG {
                out.extend_from_slice(&pos.to_le_bytes());
                out.extend_from_slice(&e.ksize.to_le_bytes());
                out.extend_from_slice(&e.child.to_le_bytes());
            } else {
                out.extend_from_slice(&e.flags.to_le_bytes());
                out.extend_from_slice(&pos.to_le_bytes());
                out.extend_from_slice(&e.ksize.to_le_bytes());
                out.extend_from_slice(&e.vsize.to_le_bytes());
            }
            data_off = data_off.saturating_add(e.ksize as usize).saturating_add(e.vsize as usize);
        }
        Ok((overflow, padded))
    }
}

/// One level of a bucket's tree: the open page and how many pages were written before it.
#[derive(Debug, Default)]
struct Level {
    open: PageBuf,
    written: u64,
}

impl Level {
    fn new(sizes_only: bool) -> Self {
        Self { open: PageBuf { sizes_only, ..PageBuf::default() }, written: 0 }
    }
}

/// A bucket being built.
#[derive(Debug)]
struct OpenBucket {
    name: Vec<u8>,
    sequence: u64,
    /// `levels[0]` holds leaves, `levels[1..]` branches.
    levels: Vec<Level>,
    last_key: Option<Vec<u8>>,
    has_sub_buckets: bool,
}

impl OpenBucket {
    fn new(name: Vec<u8>, sequence: u64, sizes_only: bool) -> Self {
        Self { name, sequence, levels: vec![Level::new(sizes_only)], last_key: None, has_sub_buckets: false }
    }
}

/// How a builder lays out the meta pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Meta pages reserved, written at the end by seeking back.
    SeekBack,
    /// Planning: nothing is written; only the layout is computed.
    Plan,
    /// Meta pages of a planned layout written first; the output is one sequential stream.
    Streamed(Meta),
}

/// A writer that discards everything: the output of a planning builder.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Discard {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Ok(0)
    }
}

/// Writes a bbolt file from sorted buckets and keys (see the module docs).
///
/// ```
/// # fn main() -> Result<(), etcdsnap_bolt::Error> {
/// use etcdsnap_bolt::builder::{BuildOptions, Builder};
/// let mut out = std::io::Cursor::new(Vec::new());
/// let mut b = Builder::new(&mut out, BuildOptions::default())?;
/// b.create_bucket(b"key", 0)?;
/// b.put(b"a", b"1")?;
/// b.put(b"b", b"2")?;
/// b.close_bucket()?;
/// b.finish()?;
/// let data = out.into_inner();
/// let db = etcdsnap_bolt::Db::open(&data)?;
/// assert_eq!(db.bucket(&[b"key"])?.unwrap().get(b"b")?, Some(&b"2"[..]));
/// assert!(db.check().is_ok());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Builder<W: Write> {
    out: W,
    opts: BuildOptions,
    page_size: usize,
    threshold: usize,
    next_pgid: Pgid,
    /// `stack[0]` is the root bucket.
    stack: Vec<OpenBucket>,
    scratch: Vec<u8>,
    buckets: u64,
    keys: u64,
    mode: Mode,
}

/// Where a closed bucket ended up.
enum Closed {
    Paged(Pgid),
    Inline(Vec<u8>),
}

impl<W: Write + Seek> Builder<W> {
    /// Starts a file at offset 0 of `out` (normally an empty file): reserves the
    /// two meta pages, written by [`finish`](Self::finish) once the layout is
    /// known, and writes the empty freelist page.
    pub fn new(out: W, opts: BuildOptions) -> Result<Self> {
        Self::start(out, opts, Mode::SeekBack)
    }

    /// Closes open buckets, writes the root bucket and both meta pages; returns what was written.
    pub fn finish(mut self) -> Result<BuildSummary> {
        let meta = self.complete()?;
        match self.mode {
            Mode::SeekBack => {
                self.out.seek(SeekFrom::Start(0)).map_err(out_err)?;
                self.out.write_all(&meta_pages(&meta)).map_err(out_err)?;
                let end = meta.pgid.saturating_mul(self.page_size as u64);
                self.out.seek(SeekFrom::Start(end)).map_err(out_err)?;
            }
            Mode::Streamed(planned) => check_plan(&planned, &meta)?,
            Mode::Plan => {}
        }
        self.out.flush().map_err(out_err)?;
        Ok(self.summary(meta))
    }
}

impl Builder<Discard> {
    /// A builder that writes nothing and only lays out pages: fed the same calls as
    /// a real build, its [`BuildSummary`] is the layout that build will have, so
    /// [`Builder::streamed`] can write the meta pages first and the whole file can
    /// be hashed as it is written.
    pub fn plan(opts: BuildOptions) -> Result<Self> {
        Self::start(Discard, opts, Mode::Plan)
    }
}

impl<W: Write> Builder<W> {
    /// Starts a file whose layout was computed by a [`Builder::plan`] fed the same
    /// calls: the meta pages go out first and the file is written strictly in
    /// order. [`finish_streamed`](Self::finish_streamed) fails if the calls differed.
    pub fn streamed(out: W, opts: BuildOptions, plan: &BuildSummary) -> Result<Self> {
        Self::start(out, opts, Mode::Streamed(plan.meta))
    }

    /// Finishes a planned or streamed build; returns the writer and what was written.
    pub fn finish_streamed(mut self) -> Result<(W, BuildSummary)> {
        let meta = self.complete()?;
        match self.mode {
            Mode::Streamed(planned) => check_plan(&planned, &meta)?,
            Mode::Plan => {}
            Mode::SeekBack => return Err(BuildError::LayoutChanged.at(Vec::new(), b"").into()),
        }
        self.out.flush().map_err(out_err)?;
        let summary = self.summary(meta);
        Ok((self.out, summary))
    }

    fn start(mut out: W, opts: BuildOptions, mode: Mode) -> Result<Self> {
        if !crate::layout::valid_page_size(opts.page_size) {
            return Err(BuildError::PageSize(opts.page_size).at(Vec::new(), b"").into());
        }
        let page_size = opts.page_size as usize;
        let fill = if opts.fill_percent.is_nan() { DEFAULT_FILL_PERCENT } else { opts.fill_percent.clamp(0.1, 1.0) };
        // fill is in 0.1..=1.0 and page_size at most 64 KiB: the product is a small positive number.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = ((page_size as f64) * fill) as usize;
        // Freelist choice: an empty freelist page rather than etcd's no-freelist
        // sentinel. Every reader accepts it as is: Go bbolt read-only and
        // read-write (a sentinel makes a read-write open without NoFreelistSync
        // rewrite the file to add a freelist), etcd 3.4/3.5 (which read it, then
        // switch to the sentinel at their first commit), and strict third-party
        // readers that reject the sentinel. It is also exact: we leave no free pages.
        let mut head = match mode {
            Mode::Streamed(meta) => meta_pages(&meta),
            _ => vec![0u8; page_size.saturating_mul(2)],
        };
        // page_size is at most 64 KiB (checked above): none of these overflow.
        let freelist_at = page_size.saturating_mul(2);
        head.resize(page_size.saturating_mul(3), 0);
        let mut h = [0u8; PAGE_HEADER_SIZE];
        PageHeader { id: FREELIST_PGID, flags: FREELIST_PAGE_FLAG, count: 0, overflow: 0 }.write_to(&mut h);
        if let Some(dst) = head.get_mut(freelist_at..freelist_at.saturating_add(PAGE_HEADER_SIZE)) {
            dst.copy_from_slice(&h);
        }
        if mode != Mode::Plan {
            out.write_all(&head).map_err(out_err)?;
        }
        let sizes_only = mode == Mode::Plan;
        Ok(Self {
            out,
            opts: BuildOptions { txid: opts.txid.max(1), ..opts },
            page_size,
            threshold,
            next_pgid: 3,
            stack: vec![OpenBucket::new(Vec::new(), 0, sizes_only)],
            scratch: Vec::new(),
            buckets: 0,
            keys: 0,
            mode,
        })
    }

    fn sizes_only(&self) -> bool {
        self.mode == Mode::Plan
    }

    /// Nesting depth: 0 in the root bucket, 1 in a top-level bucket, and so on.
    pub fn depth(&self) -> usize {
        self.stack.len().saturating_sub(1)
    }

    fn path(&self) -> Vec<Vec<u8>> {
        self.stack.iter().skip(1).map(|b| b.name.clone()).collect()
    }

    fn top(&mut self) -> Result<&mut OpenBucket> {
        self.stack.last_mut().ok_or_else(|| BuildError::Finished.at(Vec::new(), b"").into())
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        let fail = |e: BuildError| -> Error { e.at(self.path(), key).into() };
        if key.is_empty() {
            return Err(fail(BuildError::EmptyKey));
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(fail(BuildError::KeyTooLarge { len: key.len() }));
        }
        let top = self.stack.last().ok_or_else(|| fail(BuildError::Finished))?;
        if top.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(fail(BuildError::KeyOrder));
        }
        Ok(())
    }

    /// Opens the nested bucket `name` (with its `NextSequence` counter) in the
    /// current bucket; what follows goes into it until [`close_bucket`](Self::close_bucket).
    pub fn create_bucket(&mut self, name: &[u8], sequence: u64) -> Result<()> {
        self.check_key(name)?;
        let top = self.top()?;
        top.last_key = Some(name.to_vec());
        top.has_sub_buckets = true;
        let sizes_only = self.sizes_only();
        self.stack.push(OpenBucket::new(name.to_vec(), sequence, sizes_only));
        Ok(())
    }

    /// Appends `key` = `value` to the current bucket; keys must strictly increase.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.stack.len() == 1 {
            return Err(BuildError::ValueInRoot.at(Vec::new(), key).into());
        }
        self.check_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(BuildError::ValueTooLarge { len: value.len() }.at(self.path(), key).into());
        }
        self.top()?.last_key = Some(key.to_vec());
        self.keys = self.keys.saturating_add(1);
        self.append(0, 0, key, value, 0)
    }

    /// A planning builder's [`put`](Self::put) of a value known only by its
    /// length: the layout depends on sizes alone, so a planning pass need not
    /// make the bytes it will write later. Refused by a builder that writes.
    pub fn put_sized(&mut self, key: &[u8], value_len: usize) -> Result<()> {
        if !self.sizes_only() {
            return Err(BuildError::LayoutChanged.at(self.path(), key).into());
        }
        if self.stack.len() == 1 {
            return Err(BuildError::ValueInRoot.at(Vec::new(), key).into());
        }
        self.check_key(key)?;
        if value_len > MAX_VALUE_SIZE {
            return Err(BuildError::ValueTooLarge { len: value_len }.at(self.path(), key).into());
        }
        self.top()?.last_key = Some(key.to_vec());
        self.keys = self.keys.saturating_add(1);
        self.append_sized(key, value_len)
    }

    /// Closes the current bucket and adds its entry to its parent.
    pub fn close_bucket(&mut self) -> Result<()> {
        if self.stack.len() < 2 {
            return Err(BuildError::NoOpenBucket.at(Vec::new(), b"").into());
        }
        let closed = self.close_levels(true)?;
        let bucket = self.stack.pop().ok_or_else(|| Error::from(BuildError::NoOpenBucket.at(Vec::new(), b"")))?;
        let mut value = BucketHeader { root: 0, sequence: bucket.sequence }.to_bytes().to_vec();
        match closed {
            Closed::Paged(root) => value = BucketHeader { root, sequence: bucket.sequence }.to_bytes().to_vec(),
            Closed::Inline(image) => value.extend_from_slice(&image),
        }
        debug_assert!(value.len() >= BUCKET_HEADER_SIZE);
        self.buckets = self.buckets.saturating_add(1);
        self.append(0, BUCKET_LEAF_FLAG, &bucket.name, &value, 0)
    }

    /// Appends an element to `level` of the current bucket; when it would not
    /// fit, the open page is written first and a new one started.
    fn append(&mut self, level: usize, flags: u32, key: &[u8], value: &[u8], child: Pgid) -> Result<()> {
        self.make_room(level, key.len(), value.len())?;
        self.level(level)?.open.push(flags, key, value, child);
        Ok(())
    }

    /// [`append`](Self::append) of a leaf value by its length (planning only).
    fn append_sized(&mut self, key: &[u8], value_len: usize) -> Result<()> {
        self.make_room(0, key.len(), value_len)?;
        self.level(0)?.open.push_sized(key, value_len);
        Ok(())
    }

    /// Writes the open page of `level` first when an element of these sizes
    /// would not fit in it.
    fn make_room(&mut self, level: usize, key_len: usize, value_len: usize) -> Result<()> {
        let threshold = self.threshold;
        let elem = ELEMENT_SIZE.saturating_add(key_len).saturating_add(value_len);
        // Every page takes at least two elements (bbolt's `minKeysPerPage`): a branch
        // level then has at most half the pages of the one below, so the tree
        // converges even when keys are larger than a page, and large values share
        // overflow runs instead of each padding its own. A run that already spans
        // several pages also takes elements that fit in its padding: they cost no page.
        let page_size = self.page_size;
        let full = {
            let lv = self.level(level)?;
            let (n, size) = (lv.open.elems.len(), lv.open.size());
            let grown = size.saturating_add(elem);
            let fits_padding = size > page_size && grown <= size.div_ceil(page_size).saturating_mul(page_size);
            n >= usize::from(u16::MAX - 1) || (n >= 2 && grown > threshold && !fits_padding)
        };
        if full {
            self.flush_level(level)?;
        }
        Ok(())
    }

    fn level(&mut self, level: usize) -> Result<&mut Level> {
        if level >= crate::cursor::MAX_DEPTH {
            return Err(BuildError::TreeTooDeep.at(Vec::new(), b"").into());
        }
        let sizes_only = self.sizes_only();
        let top = self.top()?;
        while top.levels.len() <= level {
            top.levels.push(Level::new(sizes_only));
        }
        top.levels.get_mut(level).ok_or_else(|| BuildError::Finished.at(Vec::new(), b"").into())
    }

    /// Writes the open page of `level` and passes its first key up one level.
    fn flush_level(&mut self, level: usize) -> Result<()> {
        let page = std::mem::take(&mut self.level(level)?.open);
        let pgid = self.write_page(&page, level)?;
        let lv = self.level(level)?;
        lv.written = lv.written.saturating_add(1);
        self.append(level.saturating_add(1), 0, page.first_key(), &[], pgid)?;
        let mut page = page;
        page.clear();
        self.level(level)?.open = page;
        Ok(())
    }

    fn write_page(&mut self, page: &PageBuf, level: usize) -> Result<Pgid> {
        let flag = if level == 0 { LEAF_PAGE_FLAG } else { BRANCH_PAGE_FLAG };
        let id = self.next_pgid;
        let overflow = if self.sizes_only() {
            let size = page.size();
            let pages = size.div_ceil(self.page_size).max(1);
            u32::try_from(pages.saturating_sub(1))
                .map_err(|_| Error::from(BuildError::PageTooLarge { size }.at(Vec::new(), b"")))?
        } else {
            // The header and elements go through the scratch buffer, the keys
            // and values straight from the page's buffer: one copy less.
            let mut scratch = std::mem::take(&mut self.scratch);
            let (overflow, padded) = page.serialize_head(id, flag, self.page_size, &mut scratch)?;
            self.out.write_all(&scratch).map_err(out_err)?;
            self.out.write_all(&page.data).map_err(out_err)?;
            let mut pad = padded.saturating_sub(scratch.len()).saturating_sub(page.data.len());
            while pad > 0 {
                let n = pad.min(ZERO_PAD.len());
                self.out.write_all(ZERO_PAD.get(..n).unwrap_or_default()).map_err(out_err)?;
                pad = pad.saturating_sub(n);
            }
            self.scratch = scratch;
            overflow
        };
        self.next_pgid = id
            .checked_add(u64::from(overflow).saturating_add(1))
            .ok_or_else(|| Error::from(BuildError::PageTooLarge { size: 0 }.at(Vec::new(), b"")))?;
        Ok(id)
    }

    /// Flushes the current bucket's levels bottom-up; returns its root page or inline image.
    fn close_levels(&mut self, may_inline: bool) -> Result<Closed> {
        let (page_size, inline) = (self.page_size, self.opts.inline_buckets && may_inline);
        let top = self.top()?;
        let leaf_only = top.levels.len() == 1 && top.levels.first().is_some_and(|l| l.written == 0);
        if inline && leaf_only && !top.has_sub_buckets {
            let open = top.levels.first().map(|l| &l.open);
            if let Some(open) = open.filter(|o| o.size() <= page_size / 4) {
                let mut image = Vec::new();
                if open.sizes_only {
                    image.resize(open.size(), 0);
                } else {
                    open.serialize(0, LEAF_PAGE_FLAG, page_size, false, &mut image)?;
                }
                return Ok(Closed::Inline(image));
            }
        }
        let mut level = 0;
        loop {
            let written = self.level(level)?.written;
            if written == 0 {
                // Nothing was written at this level: its open page is the root.
                let page = std::mem::take(&mut self.level(level)?.open);
                return self.write_page(&page, level).map(Closed::Paged);
            }
            // The open page is never empty once a page of its level was written.
            self.flush_level(level)?;
            // `level` reaching MAX_DEPTH fails in `self.level`.
            level = level.saturating_add(1);
        }
    }

    /// Closes open buckets and writes the root bucket; returns meta 0 of the layout.
    fn complete(&mut self) -> Result<Meta> {
        while self.stack.len() > 1 {
            self.close_bucket()?;
        }
        let root = match self.close_levels(false)? {
            Closed::Paged(root) => root,
            Closed::Inline(_) => return Err(BuildError::Finished.at(Vec::new(), b"").into()),
        };
        self.stack.clear();
        let meta = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: self.opts.page_size,
            flags: 0,
            root: BucketHeader { root, sequence: 0 },
            freelist: FREELIST_PGID,
            pgid: self.next_pgid,
            txid: self.opts.txid,
            checksum: 0,
        };
        Ok(Meta { checksum: meta.compute_checksum(), ..meta })
    }

    fn summary(&self, meta: Meta) -> BuildSummary {
        let bytes = meta.pgid.saturating_mul(self.page_size as u64);
        BuildSummary { meta, bytes, buckets: self.buckets, keys: self.keys }
    }
}

/// Meta pages 0 and 1 of a layout: the same tree, txids T and T−1 (as `Tx.WriteTo`).
fn meta_pages(meta0: &Meta) -> Vec<u8> {
    let meta1 = Meta { txid: meta0.txid.saturating_sub(1), ..*meta0 };
    let meta1 = Meta { checksum: meta1.compute_checksum(), ..meta1 };
    let mut pages = meta_page(meta0, 0);
    pages.extend_from_slice(&meta_page(&meta1, 1));
    pages
}

fn check_plan(planned: &Meta, built: &Meta) -> Result<()> {
    if planned == built {
        Ok(())
    } else {
        Err(BuildError::LayoutChanged.at(Vec::new(), b"").into())
    }
}

fn out_err(e: std::io::Error) -> Error {
    Error::io("<builder output>", e)
}
