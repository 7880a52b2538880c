//! The growing log's cache of complete-subtree hashes: roots and proofs in O(log n).

use super::{empty_root, node_hash, split, MerkleError};

/// The hashes of every complete subtree of an append-only RFC 9162 tree: the log's
/// rebuildable cache, from which roots and proofs at any size up to [`Tree::len`] cost
/// O(log n) hashes instead of the O(n) of [`root`](super::root), [`inclusion_proof`](super::inclusion_proof) and
/// [`consistency_proof`](super::consistency_proof) over a slice of leaves.
///
/// Level 0 holds the leaf hashes; level `h` holds `MTH(D[i·2^h : (i+1)·2^h])` for every
/// complete, aligned subtree of `2^h` leaves. RFC 9162's recursion splits a tree of `n`
/// leaves at the largest power of two `k < n`, so in a proof every subtree on the left of
/// a split is complete and aligned (one lookup), and at most one proof hash is a right edge
/// `MTH(D[a:n])`, folded from at most log n complete subtrees. Appending a leaf adds one
/// hash per level it completes (amortised two). The cache holds about 2n hashes
/// (64 bytes a leaf) and is a pure function of the leaves, so it can always be rebuilt
/// from them (or kept, level by level, by a store: see [`Tree::subtree`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    levels: Vec<Vec<[u8; 32]>>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// The tree of `leaf_hashes` (already passed through [`leaf_hash`](super::leaf_hash)), in O(n).
    pub fn from_leaves(leaf_hashes: impl IntoIterator<Item = [u8; 32]>) -> Tree {
        let mut t = Tree::new();
        for leaf in leaf_hashes {
            t.push(leaf);
        }
        t
    }

    /// Appends a leaf hash, completing whatever subtrees it completes.
    pub fn push(&mut self, leaf: [u8; 32]) {
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(node);
            if !row.len().is_multiple_of(2) {
                return;
            }
            node = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<[u8; 32]> {
        self.subtree(0, index)
    }

    /// `MTH(D[index·2^level : (index+1)·2^level])`, if that subtree is complete: what a
    /// store would keep to serve proofs without the leaves.
    pub fn subtree(&self, level: u32, index: u64) -> Option<[u8; 32]> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    fn check_size(&self, tree_size: u64) -> Result<(), MerkleError> {
        if tree_size > self.len() {
            return Err(MerkleError::TreeSizeTooLarge { tree_size, available: self.len() });
        }
        Ok(())
    }

    /// MTH(D[a:b]) for `a < b <= len`: a lookup for a complete aligned subtree, otherwise
    /// the RFC's split. Only called on ranges whose left parts are complete and aligned
    /// (every range of a proof's recursion), so it costs O(log(b - a)).
    fn mth(&self, a: u64, b: u64) -> [u8; 32] {
        let n = b - a;
        if n.is_power_of_two() && a.is_multiple_of(n) {
            let h = n.trailing_zeros() as usize;
            // In range: a complete subtree below `len` is always stored.
            return self.levels[h][(a >> h) as usize];
        }
        let k = split(n);
        node_hash(&self.mth(a, a + k), &self.mth(a + k, b))
    }

    /// The root of the whole tree.
    pub fn root(&self) -> [u8; 32] {
        match self.len() {
            0 => empty_root(),
            n => self.mth(0, n),
        }
    }

    /// The root of the tree of the first `tree_size` leaves (a historic tree head), in
    /// O(log n).
    pub fn root_at(&self, tree_size: u64) -> Result<[u8; 32], MerkleError> {
        self.check_size(tree_size)?;
        Ok(if tree_size == 0 { empty_root() } else { self.mth(0, tree_size) })
    }

    /// The inclusion proof PATH(m, D_n) of RFC 9162 §2.1.3.1 for the leaf at `index` in the
    /// tree of the first `tree_size` leaves; the same hashes as [`inclusion_proof`](super::inclusion_proof) over
    /// those leaves, in O(log n).
    pub fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<[u8; 32]>, MerkleError> {
        self.check_size(tree_size)?;
        if index >= tree_size {
            return Err(MerkleError::IndexOutOfRange { index, tree_size });
        }
        let (mut a, mut b) = (0, tree_size);
        let mut path = Vec::new();
        while b - a > 1 {
            let k = split(b - a);
            if index < a + k {
                path.push(self.mth(a + k, b));
                b = a + k;
            } else {
                path.push(self.mth(a, a + k));
                a += k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// The consistency proof PROOF(m, D_n) of RFC 9162 §2.1.4.1 between the trees of the
    /// first `old_size` and the first `new_size` leaves; the same hashes as
    /// [`consistency_proof`](super::consistency_proof), in O(log n). Empty for `old_size == 0` or `old_size ==
    /// new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<[u8; 32]>, MerkleError> {
        if old_size > new_size {
            return Err(MerkleError::SizesInvalid { old_size, new_size });
        }
        self.check_size(new_size)?;
        if old_size == 0 || old_size == new_size {
            return Ok(Vec::new());
        }
        // SUBPROOF(m, D[a:b], known), unrolled as in `consistency_proof`.
        let (mut a, mut b, mut m) = (0, new_size, old_size);
        let mut known = true;
        let mut proof = Vec::new();
        while m < b - a {
            let k = split(b - a);
            if m <= k {
                proof.push(self.mth(a + k, b));
                b = a + k;
            } else {
                proof.push(self.mth(a, a + k));
                a += k;
                m -= k;
                known = false;
            }
        }
        if !known {
            proof.push(self.mth(a, b));
        }
        proof.reverse();
        Ok(proof)
    }
}
