//! The damage classes, as patches of a healthy file: single-bit flips in
//! every structure class, zeroed pages (torn writes) of each page kind, both
//! metas damaged, a truncated file, a freelist pointing at live pages,
//! duplicated stale pages. Every case is deterministic (a seeded generator
//! picks the pages and bits).

use etcdsnap_bolt::meta::{meta_page, Meta};

use super::map::{u16_at, u32_at, ByteClass, FileMap, PageKind};

/// A deterministic xorshift generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Up to `n` distinct picks of `items`, in a deterministic order.
    pub fn pick<T: Copy>(&mut self, items: &[T], n: usize) -> Vec<T> {
        let mut idx: Vec<usize> = (0..items.len()).collect();
        let mut out = Vec::new();
        while out.len() < n && !idx.is_empty() {
            let i = self.below(idx.len());
            out.push(items[idx.swap_remove(i)]);
        }
        out
    }
}

/// How a damaged copy differs from the original.
#[derive(Debug, Clone)]
pub enum Damage {
    /// Bytes written at offsets.
    Patch(Vec<(usize, Vec<u8>)>),
    /// The file cut to this many bytes.
    Truncate(u64),
}

/// One damaged copy to salvage.
#[derive(Debug, Clone)]
pub struct Case {
    /// The damage class (a row of the table).
    pub class: String,
    /// What exactly was done, with offsets (to reproduce a finding).
    pub what: String,
    pub damage: Damage,
}

impl Damage {
    /// The byte ranges `(start, len)` of the original the damage changed.
    pub fn ranges(&self) -> Vec<(usize, usize)> {
        match self {
            Damage::Patch(p) => p.iter().map(|(o, b)| (*o, b.len())).collect(),
            Damage::Truncate(len) => vec![(*len as usize, usize::MAX / 2)],
        }
    }
}

/// The class names, in table order.
pub fn class_names() -> Vec<String> {
    let mut v: Vec<String> = ByteClass::ALL.iter().map(|c| format!("flip {}", c.name())).collect();
    v.extend(PageKind::ALL.iter().map(|k| format!("zero {}", k.name())));
    v.extend(
        [
            "metas both zeroed",
            "metas both flipped",
            "truncated",
            "freelist lists live pages",
            "freelist page reused",
            "stale copy, live zeroed",
            "stale older copy",
            "stale root copy, metas zeroed",
        ]
        .map(String::from),
    );
    v
}

/// Up to `n` cases of every class for the file `d` (image `d[..image_len]`,
/// a trailer after it when `image_len < d.len()`).
pub fn cases(d: &[u8], image_len: usize, map: &FileMap, n: usize, seed: u64) -> Vec<Case> {
    let mut rng = Rng(seed | 1);
    let ps = map.ps;
    let mut out = Vec::new();
    let page = |id: u64| id as usize * ps;
    let zero_page = |id: u64| (page(id), vec![0u8; ps]);
    // Single-bit flips, uniform over each class's structural bytes.
    for class in ByteClass::ALL {
        let Some(ranges) = map.bytes.get(&class) else { continue };
        let total: usize = ranges.iter().map(|r| r.1).sum();
        for _ in 0..n.min(total) {
            let (mut at, bit) = (rng.below(total), rng.below(8));
            let &(start, _) = ranges
                .iter()
                .find(|r| {
                    let hit = at < r.1;
                    if !hit {
                        at -= r.1;
                    }
                    hit
                })
                .unwrap();
            let off = start + at;
            out.push(Case {
                class: format!("flip {}", class.name()),
                what: format!("bit {bit} of byte {off} (page {})", off / ps),
                damage: Damage::Patch(vec![(off, vec![d[off] ^ (1 << bit)])]),
            });
        }
    }
    // Torn writes: one whole page of each kind zeroed.
    for kind in PageKind::ALL {
        for id in rng.pick(&map.pages(kind), n) {
            out.push(Case {
                class: format!("zero {}", kind.name()),
                what: format!("page {id} zeroed"),
                damage: Damage::Patch(vec![zero_page(id)]),
            });
        }
    }
    // Both metas.
    out.push(Case {
        class: "metas both zeroed".into(),
        what: "pages 0 and 1 zeroed".into(),
        damage: Damage::Patch(vec![zero_page(0), zero_page(1)]),
    });
    for _ in 0..n {
        // A bit of each meta struct (magic .. checksum).
        let (a, b) = (16 + rng.below(64), ps + 16 + rng.below(64));
        let (ba, bb) = (rng.below(8), rng.below(8));
        out.push(Case {
            class: "metas both flipped".into(),
            what: format!("bit {ba} of byte {a}, bit {bb} of byte {b}"),
            damage: Damage::Patch(vec![(a, vec![d[a] ^ (1 << ba)]), (b, vec![d[b] ^ (1 << bb)])]),
        });
    }
    // Truncation: fixed fractions first, then the last page and the trailer.
    let mut cuts: Vec<(String, u64)> = [5u64, 25, 50, 75, 95]
        .iter()
        .map(|p| (format!("cut at {p}%"), (d.len() as u64 * p / 100) / 512 * 512))
        .collect();
    cuts.push(("half of the last page cut".into(), (image_len - ps / 2) as u64));
    if image_len < d.len() {
        cuts.push(("trailer cut in half".into(), (image_len + (d.len() - image_len) / 2) as u64));
    }
    let pick = rng.pick(&(0..cuts.len()).collect::<Vec<_>>(), n);
    for i in pick {
        let (what, len) = cuts[i].clone();
        out.push(Case {
            class: "truncated".into(),
            what: format!("{what} ({len} bytes)"),
            damage: Damage::Truncate(len),
        });
    }
    let free = map.pages(PageKind::Free);
    let keys = map.pages(PageKind::KeyLeaf);
    let live: Vec<u64> = (2..map.hwm).filter(|&i| !matches!(map.kinds[i as usize], PageKind::Free)).collect();
    // A freelist page listing live pages, the active meta pointing at it.
    for f in rng.pick(&free, n) {
        let mut patches = freelist_at(d, map, f, &live);
        out.push(Case {
            class: "freelist lists live pages".into(),
            what: format!("freelist at page {f} lists {} live pages", live.len().min((ps - 16) / 8)),
            damage: Damage::Patch(patches.clone()),
        });
        // ...and one listed key page reused by a later transaction: it holds another page's elements.
        if let [x, y] = rng.pick(&keys, 2)[..] {
            let mut copy = d[page(y)..page(y) + ps].to_vec();
            copy[..8].copy_from_slice(&x.to_le_bytes());
            patches.push((page(x), copy));
            out.push(Case {
                class: "freelist page reused".into(),
                what: format!("freelist at page {f}; key page {x} holds page {y}'s elements"),
                damage: Damage::Patch(patches),
            });
        }
    }
    // Duplicated stale pages: a live page's copy in a free page, then the live one changed.
    for (x, f) in rng.pick(&keys, n).into_iter().zip(rng.pick(&free, n)) {
        let mut copy = d[page(x)..page(x) + ps].to_vec();
        copy[..8].copy_from_slice(&f.to_le_bytes());
        out.push(Case {
            class: "stale copy, live zeroed".into(),
            what: format!("key page {x} copied to free page {f}, then zeroed"),
            damage: Damage::Patch(vec![(page(f), copy), zero_page(x)]),
        });
        // An older version of the page (its first half of elements) in a free page; the live one intact.
        if let Some(older) = leaf_prefix(d, ps, x, f) {
            out.push(Case {
                class: "stale older copy".into(),
                what: format!("first half of key page {x}'s elements as free page {f}"),
                damage: Damage::Patch(vec![(page(f), older)]),
            });
        }
    }
    let roots = map.pages(PageKind::RootLeaf);
    for (r, f) in rng.pick(&roots, n).into_iter().zip(rng.pick(&free, n)) {
        let mut copy = d[page(r)..page(r) + ps].to_vec();
        copy[..8].copy_from_slice(&f.to_le_bytes());
        out.push(Case {
            class: "stale root copy, metas zeroed".into(),
            what: format!("root page {r} copied to free page {f}, pages 0 and 1 zeroed"),
            damage: Damage::Patch(vec![(page(f), copy), zero_page(0), zero_page(1)]),
        });
    }
    out
}

/// A freelist page at free page `f` listing `live` (as many as fit), and the
/// active meta rewritten to point at it (checksum recomputed).
fn freelist_at(d: &[u8], map: &FileMap, f: u64, live: &[u64]) -> Vec<(usize, Vec<u8>)> {
    let ps = map.ps;
    let ids: Vec<u64> = live.iter().copied().take((ps - 16) / 8).collect();
    let mut p = vec![0u8; ps];
    p[..8].copy_from_slice(&f.to_le_bytes());
    p[8..10].copy_from_slice(&0x10u16.to_le_bytes());
    p[10..12].copy_from_slice(&(ids.len() as u16).to_le_bytes());
    for (i, id) in ids.iter().enumerate() {
        p[16 + 8 * i..24 + 8 * i].copy_from_slice(&id.to_le_bytes());
    }
    let at = map.active * ps;
    let mut m = Meta::parse(&d[at..at + ps]).unwrap();
    m.freelist = f;
    vec![(f as usize * ps, p), (at, meta_page(&m, map.active as u64))]
}

/// Page `x`'s first half of leaf elements re-encoded as leaf page `f`.
fn leaf_prefix(d: &[u8], ps: usize, x: u64, f: u64) -> Option<Vec<u8>> {
    let p = x as usize * ps;
    let count = u16_at(d, p + 10) as usize;
    if count < 2 || u32_at(d, p + 12) != 0 {
        return None;
    }
    let keep = count / 2;
    let mut out = vec![0u8; ps];
    out[..8].copy_from_slice(&f.to_le_bytes());
    out[8..10].copy_from_slice(&0x02u16.to_le_bytes());
    out[10..12].copy_from_slice(&(keep as u16).to_le_bytes());
    let mut data = 16 + 16 * keep;
    for i in 0..keep {
        let e = p + 16 + 16 * i;
        let (flags, pos, ks, vs) =
            (u32_at(d, e), u32_at(d, e + 4) as usize, u32_at(d, e + 8) as usize, u32_at(d, e + 12) as usize);
        let kv = &d[e + pos..e + pos + ks + vs];
        let o = 16 + 16 * i;
        out[o..o + 4].copy_from_slice(&flags.to_le_bytes());
        out[o + 4..o + 8].copy_from_slice(&((data - o) as u32).to_le_bytes());
        out[o + 8..o + 12].copy_from_slice(&(ks as u32).to_le_bytes());
        out[o + 12..o + 16].copy_from_slice(&(vs as u32).to_le_bytes());
        out.get_mut(data..data + kv.len())?.copy_from_slice(kv);
        data += kv.len();
    }
    Some(out)
}
